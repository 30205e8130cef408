"""The import line `wire/__init__.py` states: the engine never imports the gateway, and the gateway
imports from the engine only its pure config checks."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROUTER_MAY_IMPORT = {"engine.policy.config", "engine.vllm.settings"}


def _imports(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (REPO / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add((str(path.relative_to(REPO)), node.module))
            elif isinstance(node, ast.Import):
                found |= {(str(path.relative_to(REPO)), alias.name) for alias in node.names}
    return found


def _under(module: str, top: str) -> bool:
    return module == top or module.startswith(top + ".")


def test_engine_never_imports_the_gateway():
    assert [(f, m) for f, m in _imports("engine") if _under(m, "router")] == []


def test_gateway_imports_only_the_engines_config_checks():
    assert [(f, m) for f, m in _imports("router") if _under(m, "engine") and m not in ROUTER_MAY_IMPORT] == []
