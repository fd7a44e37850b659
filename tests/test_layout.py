"""The house rules of docs/ARCHITECTURE.md, checked on the source so the layout cannot rot.

Imports are read with ``ast`` (nothing is imported), every import counts, at the top of
a module or inside a function: a function-local import still ties two modules together,
so it may delay an import but never hide a cycle or a step upward.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vista", "spark_jobs", "models", "sources", "validation", "feature_repo",
            "devservers", "dags")  # fmt: skip

# room -> the rooms it may import (besides itself); a module's room is the longest
# prefix of its dotted name listed here
MAY_IMPORT: dict[str, set[str]] = {
    "vista.core": set(),
    "models": {"vista.core"},
    "sources": {"vista.core"},
    "validation": {"vista.core", "sources"},
    "spark_jobs": {"vista.core", "models"},
    "feature_repo": {"vista.core"},
    "devservers": set(),
    "vista": {
        "vista.core",
        "models",
        "sources",
        "validation",
        "spark_jobs",
        "feature_repo",
        "devservers",
    },
    "dags": {"vista"},
}


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


MODULES = modules()


def _module_of(dotted: str) -> str | None:
    """The project module that ``dotted`` (a module or a name in one) lives in."""
    while dotted and dotted not in MODULES:
        dotted = dotted.rpartition(".")[0]
    return dotted or None


def imports_of(path: Path) -> set[str]:
    """Project modules that ``path`` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(m for m in map(_module_of, targets) if m is not None)
    return found


GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


def room(module: str) -> str:
    return max((r for r in MAY_IMPORT if module == r or module.startswith(f"{r}.")), key=len)


def test_every_module_has_a_room():
    assert all(room(m) for m in MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_the_rooms_below_its_own(module):
    own = room(module)
    upward = sorted(
        f"{target} (room {room(target)})"
        for target in GRAPH[module]
        if room(target) != own and room(target) not in MAY_IMPORT[own]
    )
    assert not upward, f"{module} (room {own}) imports {upward}; see docs/ARCHITECTURE.md"


def test_the_ground_floor_imports_nothing_of_the_project_above_it():
    for module in (m for m in MODULES if room(m) == "vista.core"):
        assert all(room(t) == "vista.core" for t in GRAPH[module]), module


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert cycles(GRAPH) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_top_level_package_is_named_like_a_popular_library():
    # datasets (Hugging Face), and a few more names ranking modelers have installed
    taken = {"datasets", "features", "evaluate", "transformers", "utils", "core"}
    assert not taken & {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}


def test_every_step_is_in_the_registry_under_its_own_name():
    from vista import pipeline

    assert set(pipeline.RUN_STEPS) <= set(pipeline.STEPS)
    assert all(step.__name__ == name for name, step in pipeline.STEPS.items())
    called = {name for path in (ROOT / "dags").glob("*.py") for name in _run_step_names(path)}
    assert called
    assert called <= set(pipeline.STEPS)


def test_every_dag_task_is_named_after_the_step_it_runs():
    """One name per stage: a task that calls ``orc.run_step(step)`` is called ``step``."""

    def is_task(node: ast.FunctionDef) -> bool:
        # @task or @task(...)
        return any(getattr(getattr(d, "func", d), "id", "") == "task" for d in node.decorator_list)

    tasks = 0
    for path in (ROOT / "dags").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and is_task(node):
                steps = _run_step_names(node)
                assert steps == {node.name}, f"{path.name}: task {node.name} runs {steps}"
                tasks += 1
    assert tasks == 12


def _run_step_names(path: Path | ast.AST) -> set[str]:
    """The step names a DAG file (or a node of one) passes to ``orc.run_step``."""
    tree = ast.parse(path.read_text()) if isinstance(path, Path) else path
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    return {
        call.args[0].value
        for call in calls
        if getattr(call.func, "attr", "") == "run_step" and isinstance(call.args[0], ast.Constant)
    }


# a module longer than this says why at the top of its docstring's reading ("Long because")
LONG_MODULE_LINES = 420


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_long_module_says_why(module):
    source = MODULES[module].read_text()
    if source.count("\n") <= LONG_MODULE_LINES:
        return
    docstring = ast.get_docstring(ast.parse(source)) or ""
    assert "Long because" in docstring, (
        f"{module}: {source.count(chr(10))} lines; split it by idea, or say in its "
        'docstring why it is one module ("Long because ...")'
    )


def public_definitions(tree: ast.Module):
    """Top-level public functions and classes, and the public methods of those classes."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
            yield node.name, node
            if isinstance(node, ast.ClassDef):
                for inner in node.body:
                    if isinstance(inner, ast.FunctionDef) and not inner.name.startswith("_"):
                        yield f"{node.name}.{inner.name}", inner


@pytest.mark.parametrize("module", sorted(m for m in MODULES
                                          if room(m) == "vista.core" or m.startswith("vista.pipeline")))  # fmt: skip
def test_the_ground_floor_and_the_steps_document_every_public_definition(module):
    tree = ast.parse(MODULES[module].read_text())
    missing = [name for name, node in public_definitions(tree) if not ast.get_docstring(node)]
    assert not missing, f"{module}: no docstring on {missing}"


# ---------------------------------------------------------------- the README's folder table
# folders whose every entry the README's row names (the others are described as a whole)
LISTED_IN_FULL = ("conf", "models", "sources", "spark_jobs", "docs")


def folder_table() -> dict[str, str]:
    """The README's "What each folder holds" table: folder (no slash) -> its text."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## What each folder holds", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 2:
            for name in (n.strip("`").rstrip("/") for n in cells[0].split(", ")):
                rows[name] = cells[1]
    return rows


def test_the_readme_folder_table_names_every_folder_of_the_tree():
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()  # fmt: skip
    folders = {path.split("/", 1)[0] for path in tracked if "/" in path}
    rows = folder_table()
    assert folders <= set(rows), f"folders missing from the README's table: {folders - set(rows)}"
    for folder in LISTED_IN_FULL:
        entries = {p.name for p in (ROOT / folder).iterdir()
                   if not p.name.startswith(("_", ".")) and p.name != "__pycache__"}  # fmt: skip
        missing = sorted(e for e in entries if f"`{e}" not in rows[folder])
        assert not missing, f"README's row for {folder}/ does not name {missing}"
