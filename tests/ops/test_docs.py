"""The README and docs/ stay true to the code: every SKIPJOIN_* name they show is a setting something
reads, every gateway setting is in docs/gateway.md's table, every `skipjoin` flag they show exists,
and every relative link points at a file of the repository."""

import re
import subprocess
import sys

import pytest
from gw_helpers import REPO

from engine.vllm.settings import EngineSettings
from router.settings import Settings

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
GATEWAY = {f"SKIPJOIN_{n.upper()}" for n in Settings.model_fields}
KNOWN = GATEWAY | {f"SKIPJOIN_ENGINE_{n.upper()}" for n in EngineSettings.model_fields} | {"SKIPJOIN_MODELS"}
COMMANDS = ("serve", "engine", "bench", "simulate", "predictor-eval")
SHOWN = re.compile(r"skipjoin (serve|engine|bench|simulate|predictor-eval)\b([^\n`|]*)")


def names(text: str) -> set[str]:
    found = set(re.findall(r"\bSKIPJOIN_[A-Z0-9_]*[A-Z0-9]\b", text))
    return {n for n in found if not n.startswith("SKIPJOIN_TEST_")}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_setting_a_doc_names_exists(doc):
    text = doc.read_text()
    assert not names(text) - KNOWN, f"{doc.name} names settings nothing reads: {sorted(names(text) - KNOWN)}"
    # "SKIPJOIN_A / _B" shorthand hides the second name from this check and from readers' searches
    assert not re.findall(r"`SKIPJOIN_\w+` / `_", text), f"{doc.name}: write every setting's full name"


def test_every_gateway_setting_is_in_the_settings_table():
    section = (REPO / "docs/gateway.md").read_text().split("### Settings (env `SKIPJOIN_*`)", 1)[1]
    table = "\n".join(line for line in section.split("\n###", 1)[0].splitlines() if line.startswith("|"))
    missing = sorted(GATEWAY - names(table))
    assert not missing, f"docs/gateway.md's settings table lacks {missing}"


def shown_flags() -> dict[str, set[str]]:
    flags: dict[str, set[str]] = {c: set() for c in COMMANDS}
    for doc in DOCS:
        text = doc.read_text().replace("\\\n", " ")
        for cmd, rest in SHOWN.findall(text):
            rest = rest.split(" -- ", 1)[0].split("#", 1)[0]  # after `--`: the engine's own flags
            flags[cmd] |= set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", rest))
    return flags


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_flag_a_doc_shows_exists(cmd):
    wanted = shown_flags()[cmd]
    if not wanted:
        pytest.skip(f"no doc shows a flag of skipjoin {cmd}")
    out = subprocess.run([sys.executable, "-m", "router.cli", cmd, "--help"], capture_output=True, text=True,
                         cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    missing = sorted(f for f in wanted if not re.search(re.escape(f) + r"\b", out.stdout))
    assert not missing, f"skipjoin {cmd} has no {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_relative_link_points_at_a_file(doc):
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text())
    broken = [link for link in links if "://" not in link and not (doc.parent / link).exists()]
    assert not broken, f"{doc.name} links to missing files: {broken}"
