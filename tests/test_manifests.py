"""The deploy/ files: Kubernetes manifests valid against the API's schemas and
consistent with each other, restreamer configs that load, HAProxy configs
that haproxy accepts."""

import os
import subprocess
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
    assert "config/gunicorn.conf.py" in " ".join(container["command"])


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
