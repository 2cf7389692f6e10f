# A Ray node (head, CPU worker or GPU worker): Ray with Serve at the version in constraints.txt and
# nothing of the hub's (no modelhub package, no credentials but the Ray token it is given).
# Model packages bring their own dependencies (--custom-env); a GPU model's torch wheels carry CUDA,
# the NVIDIA container runtime adds the driver. MLflow models without custom env run on what the hub
# provides them (the deployer's dependencies, services/deployer/pyproject.toml): mlflow-skinny, pandas,
# scikit-learn, skops, cloudpickle.
#   docker build -f deploy/compose/ray.Dockerfile .
FROM python:3.11.14-slim-bookworm
# bubblewrap: each replica runs its model in a jail of its own (modelhub_replica.jail)
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 ray && useradd --uid 10001 --gid 10001 --create-home ray
WORKDIR /home/ray
COPY constraints.txt /tmp/constraints.txt
# numpy, pillow, onnxruntime, mlflow-skinny, pandas, scikit-learn, skops, cloudpickle: what the
# replica's format adapters import in the model's process (ONNX and MLflow packages carry no code)
RUN pip install --no-cache-dir -c /tmp/constraints.txt "ray[serve]" numpy pillow onnxruntime \
        mlflow-skinny pandas scikit-learn skops cloudpickle && rm /tmp/constraints.txt
ENV PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
USER ray:ray
