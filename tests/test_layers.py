"""The packages form layers, and imports run one way:

    ops, web  →  workers  →  services (services.py, indexing.py)  →  the core  ←  integrations

An import of a higher layer from a lower one, even inside a function, fails here. The
integrations see only the core's domain, errors and text: vendor code never pulls in the
vector store, the embedder or the policy.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
SERVICES = {"helpdesk_bot.services", "helpdesk_bot.indexing"}
INTEGRATIONS_MAY_USE = {"helpdesk_bot.domain", "helpdesk_bot.errors", "helpdesk_bot.text"}


def layer(module: str) -> str:
    if module.startswith(("helpdesk_bot.ops", "helpdesk_bot.web")):
        return "ops/web"
    if module.startswith("workers"):
        return "workers"
    if module in SERVICES:
        return "services"
    if module.startswith("integrations"):
        return "integrations"
    return "core"


# What each layer may import of the project's own layers.
ALLOWED = {
    "ops/web": {"ops/web", "workers", "services", "core", "integrations"},
    "workers": {"workers", "services", "core", "integrations"},
    "services": {"services", "core", "integrations"},
    "core": {"core"},
    "integrations": {"integrations", "core"},
}


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in ("helpdesk_bot", "workers", "integrations"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(path: Path, module: str) -> set[str]:
    found = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name.split(".")[0] in ("helpdesk_bot", "workers", "integrations")}


MODULES = project_modules()


def own(name: str) -> str | None:
    """The project module an imported name belongs to (a module, or a name inside one)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_one_way(module):
    mine = layer(module)
    wrong = sorted({target for name in imports_of(MODULES[module], module) if (target := own(name))
                    and layer(target) not in ALLOWED[mine]})
    assert not wrong, f"{module} ({mine}) imports {wrong} from a higher layer"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m.startswith("integrations")
                                          and not m.startswith("integrations.sandbox")))
def test_integrations_use_only_the_domain_errors_and_text(module):
    core = {target for name in imports_of(MODULES[module], module) if (target := own(name)) and layer(target) == "core"}
    assert core <= INTEGRATIONS_MAY_USE, f"{module} imports {sorted(core - INTEGRATIONS_MAY_USE)}"
