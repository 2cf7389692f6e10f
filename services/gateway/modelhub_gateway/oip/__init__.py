"""The Open Inference Protocol v2 (KServe v2, REST) on the gateway: each deployment a caller may
run is an OIP "model", answered by the same online predict as `POST /deployments/{name}/predict`.

`protocol`: the protocol's JSON objects; `codec`: tensors to samples and back (pure functions,
JSON tensors and Triton's binary tensor extension); `models`: the use cases the routes
(api/routes/oip.py) and the lean infer path (api/predict_asgi.py) call.
"""
