"""The embedded stack's observability wiring: an HTTP port per service process for /metrics and
the probes, and DIR/telemetry for spans (read back by `modelhub jobs trace`)."""

from pathlib import Path

from modelhub.gateways import is_gateway

TELEMETRY_DIR = "telemetry"


def _used_ports(ports: object) -> set[int]:
    if isinstance(ports, int):
        return {ports}
    if isinstance(ports, dict):
        return set().union(*(_used_ports(v) for v in ports.values())) if ports else set()
    if isinstance(ports, list):
        return set().union(*(_used_ports(v) for v in ports)) if ports else set()
    return set()


def http_ports(names: list[str], ports: dict, gateway_port: int, pick) -> dict[str, int]:
    """A free port on 127.0.0.1 for each NATS service process (new at each `up`: they are listed
    in `modelhub status --json`, and nothing else needs to remember them). Gateways serve
    /metrics on the API port, and its health at /api/v1/health."""
    taken = _used_ports(ports) | {gateway_port}
    return {name: (gateway_port if is_gateway(name) else pick(taken)) for name in names}


def service_env(name: str, data_dir: Path, http_port: int) -> dict[str, str]:
    env = {"MODELHUB_TELEMETRY_DIR": str(data_dir / TELEMETRY_DIR)}
    if not is_gateway(name):
        env["MODELHUB_HTTP_PORT"] = str(http_port)
    return env


def service_info(name: str, http_port: int) -> dict:
    base = f"http://127.0.0.1:{http_port}"
    if is_gateway(name):
        return {"metrics_url": f"{base}/metrics", "ready_url": f"{base}/api/v1/health"}
    return {
        "http_port": http_port,
        "metrics_url": f"{base}/metrics",
        "live_url": f"{base}/health/live",
        "ready_url": f"{base}/health/ready",
    }
