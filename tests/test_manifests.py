"""The deploy/ files: Kubernetes manifests valid against the API's schemas and
consistent with each other, restreamer configs that load, HAProxy configs
that haproxy accepts; the container recipe (Dockerfile, compose.yaml)
hadolint-clean, and the image the README builds the one the manifests run.
No image can be built here (no registry for base images): the recipe is
linted and checked against the rest."""

import os
import re
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from urllib.parse import urlsplit

from restreamer.config import parse
from tests.support import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
#: The oldest Kubernetes release the manifests are written for.
KUBERNETES_VERSION = "1.28"


def documents():
    return [doc for path in sorted(KUBERNETES.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(kind, name):
    return next(d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name)


@pytest.mark.parametrize("doc", documents(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_each_manifest_is_valid_against_the_kubernetes_schema(doc):
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_configmap_holds_an_origin_and_edge_config_that_load_and_fit_together():
    data = find("ConfigMap", "restreamer-config")["data"]
    origin, edge = parse(data["origin.yaml"], "origin.yaml"), parse(data["edge.yaml"], "edge.yaml")
    origin_service = find("Service", "restreamer-origin")
    port = origin_service["spec"]["ports"][0]["port"]
    served = {r.serve for r in origin.streams}
    for stream in edge.streams:
        remote = urlsplit(stream.remotes[0])
        # An edge's remote is the origin's stream URL, through the origin's Service.
        assert (remote.hostname, remote.port, remote.path) == ("restreamer-origin", port, stream.serve)
        assert stream.serve in served
    for config in (origin, edge):
        assert "/health" in {r.serve for r in config.resources if getattr(r, "api", None) == "health"}


@pytest.mark.parametrize("name", ["restreamer-origin", "restreamer-edge"])
def test_deployments_probe_health_and_mount_the_config(name):
    deployment = find("Deployment", name)
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "restreamer-config"
    # Every Service selecting this component's pods matches their labels.
    labels = pod["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    services = [d for d in documents() if d["kind"] == "Service"
                and d["spec"]["selector"].get("app.kubernetes.io/component") == labels["app.kubernetes.io/component"]]
    assert services and all(s["spec"]["selector"].items() <= labels.items() for s in services)


def test_the_edges_share_a_runtime_directory_of_their_own():
    container = find("Deployment", "restreamer-edge")["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert Path(env["RESTREAMER_RUNTIME_DIR"]).parent.as_posix() in mounts
    assert container["command"][:3] == ["gunicorn", "-c", "python:restreamer.web.gunicorn_conf"]


def haproxy_check(path: Path, env=None):
    result = subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True, text=True,
                            env=dict(os.environ, **(env or {})), timeout=20)
    assert result.returncode == 0, result.stdout + result.stderr


def test_haproxy_accepts_the_shipped_config_with_its_defaults():
    # The edges' default names resolve nowhere here: they start DOWN, no error.
    haproxy_check(DEPLOY / "haproxy.cfg")


def test_haproxy_accepts_the_kubernetes_config(tmp_path):
    config = tmp_path / "haproxy.cfg"
    config.write_text(find("ConfigMap", "restreamer-haproxy")["data"]["haproxy.cfg"])
    haproxy_check(config)
    text = config.read_text()
    for line in ("balance uri", "hash-type consistent", "option httpchk GET /health"):
        assert line in text


# -- the container recipe ---------------------------------------------------

DOCKERFILE = REPO_ROOT / "Dockerfile"
README = (REPO_ROOT / "README.md").read_text()


def instructions(name: str) -> list[str]:
    """The arguments of every ``name`` instruction of the Dockerfile (continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    return [line.split(None, 1)[1] for line in text.splitlines() if line.split(None, 1)[:1] == [name]]


def readme_image() -> str:
    """The tag of the image the README builds."""
    return re.search(r"^docker build -t (\S+) \.$", README, re.M).group(1)


def test_hadolint_finds_nothing_at_warning_level():
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([str(hadolint), "--failure-threshold", "warning", str(DOCKERFILE)],
                            capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout) == (0, "")


def test_the_image_installs_the_wheel_on_a_slim_python_runs_unprivileged_and_checks_health():
    bases = instructions("FROM")
    assert len(bases) >= 2 and all(re.fullmatch(r"python:[0-9.]+-slim( AS \w+)?", b) for b in bases)
    assert any("pip install" in run and ".whl" in run for run in instructions("RUN"))
    (user,) = instructions("USER")
    assert user not in ("0", "root")
    config = parse((REPO_ROOT / "deploy" / "container" / "restreamer.yaml").read_text(), "restreamer.yaml")
    assert instructions("EXPOSE") == [config.listen.rpartition(":")[2]]
    (health,) = instructions("HEALTHCHECK")
    served = {r.serve for r in config.resources if getattr(r, "api", None) == "health"}
    assert f"127.0.0.1:{config.listen.rpartition(':')[2]}/health" in health and served == {"/health"}


def test_compose_builds_and_publishes_the_readmes_image():
    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    (service,) = compose["services"].values()
    assert (service["build"], service["image"]) == (".", readme_image())
    assert service["ports"] == [f"{p}:{p}" for p in instructions("EXPOSE")]


def test_the_manifests_run_the_readmes_image_without_a_checkout():
    uid = int(instructions("USER")[0])
    for name in ("restreamer-origin", "restreamer-edge"):
        pod = find("Deployment", name)["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert (container["image"], container["imagePullPolicy"]) == (readme_image(), "IfNotPresent")
        assert pod["securityContext"]["runAsUser"] == uid
        assert "workingDir" not in container and "/app" not in str(container)
        # Commands the wheel installs, on settings and an app inside the package.
        assert container["command"][0] in ("restreamer", "gunicorn")
        assert [p["containerPort"] for p in container["ports"]] == [int(p) for p in instructions("EXPOSE")]
    edge = find("Deployment", "restreamer-edge")["spec"]["template"]["spec"]["containers"][0]["command"]
    assert edge[-1] == "restreamer.wsgi:app"


def test_the_readme_shows_how_to_build_and_run_the_image():
    image = readme_image()
    assert re.search(rf"^docker run .*-p 8000:8000 .*{re.escape(image)}", README, re.M)
    assert "kubectl apply -f deploy/kubernetes/" in README and "docker compose up" in README
