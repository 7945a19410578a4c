"""The package's dependencies point one way, with no import cycle.

Layers, lowest first: data types -> prompts and backbone loading -> critique generation and
cache -> data -> model -> evaluation -> CLI. A module may import its own layer or lower ones.
"""

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "lightning_critrm"
LAYERS = {
    "records": 0, "layout": 0, "atomic_write": 0, "locations": 0, "scalars": 0, "signals": 0, "console": 0,
    "errors": 0,
    "prompts": 1, "backbones": 1, "hardware": 1,
    "critique": 2,
    "data": 3,
    "model": 4,
    "evaluation": 5, "reward": 5,
    "cli": 6, "trainer": 6, "score": 6, "evaluate": 6, "study": 6, "self_critique": 6, "__main__": 6,
    "__init__": 0,
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every lightning_critrm module ``path`` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lightning_critrm")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lightning_critrm"):
            for alias in node.names:  # `from pkg import submodule` imports the submodule
                sub = f"{node.module}.{alias.name}"
                found.add(sub if (REPO / Path(*sub.split("."))).with_suffix(".py").exists() else node.module)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else 0


def test_every_import_points_to_the_same_or_a_lower_layer():
    upward = [(m, t) for m, targets in graph().items() for t in targets if layer(t) > layer(m)]
    assert not upward, upward


def test_there_is_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(path[path.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node)


def test_evaluation_never_loads_the_data_module():
    code = (
        "import sys, lightning_critrm.evaluation, lightning_critrm.model.reward_pass; "
        "assert 'lightning_critrm.data.datamodule' not in sys.modules, 'evaluation loaded the DataModule'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    assert not any("datamodule" in t for m, ts in graph().items() if ".evaluation" in m for t in ts)


def test_no_module_is_over_400_lines():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert not long, f"split these (the house keeps modules small): {long}"
