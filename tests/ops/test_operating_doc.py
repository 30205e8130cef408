"""README's Operating section: every `bash` block runs as written (in order, in one shell) against a live
gateway, and prints what its `# expect:` lines say. Only the ports differ: the doc's
localhost:8000 (the gateway) and localhost:8101 (a second engine) are this test's servers."""

import re
import shutil
import subprocess

import pytest
from gw_helpers import REPO, gateway, upstream

DOC = REPO / "README.md"
TOKEN = "change-me"


def blocks() -> list[str]:
    section = DOC.read_text().split("\n## Operating\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^```bash\n(.*?)^```", section, re.S | re.M)


def test_the_doc_has_examples_for_every_admin_route():
    text = "\n".join(blocks())
    for route in ("/admin/config", "/admin/config/gateway", "/admin/config/engine", "/admin/audit",
                  "/admin/config/gateway/aging_rate",
                  "/admin/requests", "/admin/replicas", "/admin/stats", "/metrics"):
        assert route in text, route


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_every_bash_block_runs_as_written(redis_server, redis_client):
    with (
        upstream(token_delay=0.02) as engine,
        upstream() as second,
        gateway(redis_server.url, engine.url, admin_token=TOKEN) as gw,
    ):
        script = ["set -euo pipefail"]
        for i, block in enumerate(blocks()):
            script += [f"echo; echo '@@block {i}@@'", block]
        text = "\n".join(script)
        text = text.replace("localhost:8000", f"127.0.0.1:{gw.port}")
        text = text.replace("localhost:8101", f"127.0.0.1:{second.port}")
        out = subprocess.run(["bash", "-c", text], capture_output=True, text=True, timeout=120,
                             env={"PATH": "/usr/bin:/bin", "SKIPJOIN_ADMIN_TOKEN": TOKEN})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    outputs = re.split(r"^@@block \d+@@\n", out.stdout, flags=re.M)[1:]
    assert len(outputs) == len(blocks())
    for block, printed in zip(blocks(), outputs, strict=True):
        for expect in re.findall(r"^# expect: (.+)$", block, re.M):
            assert expect in printed, (block, printed[-2000:])
