"""docker-compose.yml and deploy/k8s, validated offline: `docker-compose config` (no Docker daemon
here), kustomize-rendered overlays against the Kubernetes schemas (kubernetes-validate), and the
Grafana panels against the metrics a live gateway exports."""

import json
import re
import shutil
import subprocess

import httpx
import pytest
import yaml
from gw_helpers import REPO, gateway, upstream

COMPOSE = shutil.which("docker-compose")
KUSTOMIZE = shutil.which("kustomize") or shutil.which("kubectl")
needs_compose = pytest.mark.skipif(COMPOSE is None, reason="needs docker-compose (scripts/system_deps.sh)")


def compose_config(*args: str) -> dict:
    out = subprocess.run([COMPOSE, "-f", str(REPO / "docker-compose.yml"), *args, "config"],
                         capture_output=True, text=True, cwd=REPO, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "SKIPJOIN_ADMIN_TOKEN": "t0ken"})
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


@needs_compose
def test_compose_default_runs_redis_with_aof_the_cpu_engine_gateways_and_monitoring():
    cfg = compose_config()
    services = {k: v for k, v in cfg["services"].items() if not v.get("profiles")}
    assert set(services) == {"redis", "engine", "gateway", "prometheus", "grafana"}
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--appendonly") + 1] == "yes"
    assert redis_cmd[redis_cmd.index("--appendfsync") + 1] == "everysec"
    assert services["engine"]["command"][:2] == ["skipjoin", "engine"]
    assert "--backend" not in services["engine"]["command"]  # vLLM-CPU, the default backend
    gw = services["gateway"]
    assert gw["deploy"]["replicas"] >= 2
    assert gw["environment"]["SKIPJOIN_ENGINES"] == "http://engine:8100"
    assert gw["environment"]["SKIPJOIN_ADMIN_TOKEN"] == "t0ken"
    for svc in ("prometheus", "grafana"):
        for vol in services[svc]["volumes"]:
            source = vol["source"] if isinstance(vol, dict) else vol.split(":")[0]
            assert (REPO / source).exists() or source.startswith(str(REPO)), source


@needs_compose
def test_compose_gpu_profile_adds_the_sglang_engine_on_a_gpu():
    services = compose_config("--profile", "gpu")["services"]
    gpu = services["engine-gpu"]
    assert gpu["profiles"] == ["gpu"]  # only with --profile gpu
    assert gpu["command"][gpu["command"].index("--backend") + 1] == "sglang"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert (REPO / gpu["build"]["dockerfile"]).exists() or (REPO / "deploy/Dockerfile.gpu").exists()


def test_prometheus_config_scrapes_gateways_and_engines():
    cfg = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert jobs["skipjoin-gateway"]["dns_sd_configs"][0]["port"] == 8000
    assert jobs["skipjoin-engine"]["static_configs"][0]["targets"] == ["engine:8100"]


def render(overlay: str) -> str:
    exe = KUSTOMIZE
    cmd = [exe, "build"] if exe.endswith("kustomize") else [exe, "kustomize"]
    out = subprocess.run([*cmd, str(REPO / "deploy/k8s/overlays" / overlay)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(KUSTOMIZE is None, reason="needs kustomize or kubectl")
@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_k8s_overlays_validate_against_the_kubernetes_schemas(overlay, tmp_path):
    import kubernetes_validate

    docs = [d for d in yaml.safe_load_all(render(overlay)) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)  # raises on any schema error
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "gateway"), ("StatefulSet", "engine"), ("StatefulSet", "redis"),
            ("Service", "gateway"), ("Service", "redis"), ("ConfigMap", "skipjoin-settings"),
            ("Secret", "skipjoin-admin")} <= kinds
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    gw = by[("Deployment", "gateway")]["spec"]["template"]["spec"]["containers"][0]
    assert gw["readinessProbe"]["httpGet"]["path"] == gw["livenessProbe"]["httpGet"]["path"] == "/health"
    assert {"secretRef": {"name": "skipjoin-admin"}} in gw["envFrom"]
    redis = by[("StatefulSet", "redis")]["spec"]
    assert redis["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert redis["template"]["spec"]["containers"][0]["args"][:2] == ["--appendonly", "yes"]
    engine = by[("StatefulSet", "engine")]["spec"]["template"]["spec"]["containers"][0]
    gpus = engine["resources"].get("limits", {}).get("nvidia.com/gpu")
    assert (gpus == "1") == (overlay == "gpu")
    assert ("--backend sglang" in engine["args"][0]) == (overlay == "gpu")


def test_a_broken_manifest_is_caught():
    import kubernetes_validate

    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
           "spec": {"replicas": "two", "selector": {}, "template": {}}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.30.0", strict=True)


def test_grafana_panels_query_metrics_the_gateway_exports(redis_server, redis_client):
    dash = json.loads((REPO / "deploy/grafana/dashboards/skipjoin.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    wanted = {re.sub(r"_(bucket|count|sum)$", "", m) for e in exprs for m in re.findall(r"skipjoin_\w+", e)}
    with upstream() as up, gateway(redis_server.url, up.url, admin_token="t") as gw:
        assert httpx.post(gw.url + "/v1/completions", json={"prompt": "hi"}).status_code == 200
        httpx.patch(gw.url + "/admin/config/gateway", json={"aging_rate": 1.0},
                    headers={"Authorization": "Bearer t"})
        text = httpx.get(gw.url + "/metrics").text
    exported = {m.group(1) for m in re.finditer(r"^# TYPE (\w+) ", text, re.M)}
    assert wanted <= exported, wanted - exported
