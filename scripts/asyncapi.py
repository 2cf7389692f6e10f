"""The AsyncAPI 3.0 document of the whole bus, generated from the services' own brokers.

Each service's app is built (nothing connects: no NATS, MongoDB or Ray is needed) and FastStream's
specification API reads every subscriber and declared publisher off the five brokers into one
document. `make asyncapi` rewrites the committed copies; tests/unit/test_asyncapi.py fails when
they differ from what the code declares.

    python scripts/asyncapi.py           # rewrite docs/asyncapi.yaml and the gateway's copy
    python scripts/asyncapi.py --check   # exit 1 when a committed copy is stale
"""

import json
import sys
import tempfile
import warnings
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
YAML_PATH = ROOT / "docs" / "asyncapi.yaml"
# what the gateway serves at /api/v1/asyncapi.json (package data: the docs folder is not installed)
JSON_PATH = ROOT / "services" / "gateway" / "modelhub_gateway" / "asyncapi.json"
NATS_URL = "nats://localhost:4222"  # the address shown in the document's `servers`

DESCRIPTION = """\
modelhub's services meet only on NATS. Subjects under `modelhub.evt.` are events on the JetStream
stream `MODELHUB` (published with `Nats-Msg-Id` = `event_id`, so a retried publish is stored once;
every event carries `schema_version`, bumped only by an incompatible change); subjects under
`modelhub.rpc.` are core NATS request/reply commands answered with an `RpcReply`
(`status` as in HTTP, `detail`, `data`); `modelhub.ext.` is where other systems send commands as a
user (their API token in the `Authorization` header), see docs/API.md. Operation titles read
`<service>:send:<subject>` or `<service>:receive:<subject>`."""


def brokers() -> list:
    """The five services' brokers, built as each service builds its own."""
    from modelhub_deployer.app import build_app as deployer
    from modelhub_gateway.app import build_app as gateway
    from modelhub_gateway.settings import GatewaySettings
    from modelhub_registry.app import build_app as registry
    from modelhub_runtime.settings import ServiceSettings
    from modelhub_scheduler.app import build_app as scheduler
    from modelhub_worker.app import build_app as worker

    tmp = Path(tempfile.mkdtemp(prefix="modelhub-asyncapi-"))
    settings = ServiceSettings(nats_url=NATS_URL, data_dir=tmp)
    # each returns (app, broker, database)
    found = [build(settings)[1] for build in (registry, deployer, scheduler, worker)]
    found.append(gateway(GatewaySettings(nats_url=NATS_URL, data_dir=tmp, admin_token="unused")).state.broker)
    return found


def document() -> dict:
    """The document as plain JSON data."""
    from faststream.specification import AsyncAPI

    with warnings.catch_warnings():
        # two endpoints under one name would hide one of them: fail instead
        warnings.filterwarnings("error", message="Overwrit", category=RuntimeWarning)
        spec = AsyncAPI(
            *brokers(), title="modelhub bus", version="1", description=DESCRIPTION, schema_version="3.0.0"
        ).to_specification()
    return json.loads(spec.to_json())


def rendered(doc: dict) -> tuple[str, str]:
    """(YAML text, JSON text) as committed."""
    return (
        yaml.safe_dump(doc, sort_keys=True, allow_unicode=True, width=100),
        json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
    )


def stale() -> list[Path]:
    """The committed copies that differ from what the code declares now."""
    yaml_text, json_text = rendered(document())
    return [
        p for p, text in ((YAML_PATH, yaml_text), (JSON_PATH, json_text)) if not p.exists() or p.read_text() != text
    ]


def main() -> int:
    if "--check" in sys.argv:
        bad = stale()
        for path in bad:
            print(f"{path.relative_to(ROOT)} is stale: run `make asyncapi`", file=sys.stderr)
        return 1 if bad else 0
    yaml_text, json_text = rendered(document())
    YAML_PATH.write_text(yaml_text)
    JSON_PATH.write_text(json_text)
    print(f"wrote {YAML_PATH.relative_to(ROOT)} and {JSON_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
