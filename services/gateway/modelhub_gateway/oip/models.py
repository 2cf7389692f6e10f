"""OIP's per-model use cases: a model is a deployment the caller may run, at the one version it
serves. Metadata and readiness read the deployment and its schema; infer decodes the tensors into
samples, runs them through `OnlinePredict.predict` (the bounds, batching and direct path of
`POST /deployments/{name}/predict`) and encodes the outputs as tensors.

They raise domain errors as online predict does; the gateway answers them in OIP's shape and
statuses (api/errors.py: 422 becomes 400, a deployment that is not running 503).
"""

from faststream.nats import NatsBroker

from modelhub_contracts.documents import Deployment, User
from modelhub_contracts.errors import NotFound
from modelhub_gateway.deployments import visible_deployment
from modelhub_gateway.oip import codec
from modelhub_gateway.oip.protocol import ModelMetadata, ModelReady
from modelhub_gateway.online import OnlinePredict, check_running
from modelhub_gateway.schemas import PredictIn
from modelhub_gateway.store import GatewayStore


async def model_deployment(store: GatewayStore, user: User, name: str, version: str | None) -> Deployment:
    """The deployment `name` if the caller may run it (404 otherwise, as online predict), and,
    when the path names a version, if it serves that version (404 otherwise)."""
    deployment = await visible_deployment(store, user, name, recent=True)
    if version is not None and version != str(deployment["version"]):
        raise NotFound(
            f"deployment '{name}' serves version {deployment['version']} of model "
            f"'{deployment['model']}', not version '{version[:40]}'"
        )
    return deployment


async def metadata(
    online: OnlinePredict, store: GatewayStore, user: User, name: str, version: str | None
) -> ModelMetadata:
    """`GET /v2/models/{name}[/versions/{version}]`: the tensors the deployment's schema makes."""
    deployment = await model_deployment(store, user, name, version)
    inputs, outputs = await online.schema(store, deployment)
    return codec.model_metadata(name, deployment["version"], inputs, outputs)


async def ready(store: GatewayStore, user: User, name: str, version: str | None) -> ModelReady:
    """`GET /v2/models/{name}[/versions/{version}]/ready`: ready when running (else 409, which
    OIP answers 503)."""
    check_running(await model_deployment(store, user, name, version))
    return ModelReady(name=name, ready=True)


async def infer(
    online: OnlinePredict,
    store: GatewayStore,
    broker: NatsBroker,
    user: User,
    name: str,
    version: str | None,
    body: bytes,
    header_length: str | None,
    content_encoding: str | None = None,
) -> codec.Encoded:
    """`POST /v2/models/{name}[/versions/{version}]/infer`: the one implementation under both HTTP
    paths (the route in api/routes/oip.py and the lean path in api/predict_asgi.py)."""
    deployment = await model_deployment(store, user, name, version)
    check_running(deployment)
    if content_encoding not in (None, "identity"):
        raise codec.BadRequest(f"Content-Encoding {content_encoding[:40]} is not supported; send the body as is")
    inputs, outputs = await online.schema(store, deployment)
    request = codec.decode_request(body, header_length, inputs, outputs)
    result = await online.predict(store, broker, deployment, PredictIn(inputs=request.inputs))
    return codec.encode_response(name, deployment["version"], request, result.outputs, outputs)
