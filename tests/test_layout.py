"""The layout's rules, checked from the source: no import cycle between project modules (imports
inside functions and under ``TYPE_CHECKING`` count) and no ``sys.path`` edits outside tests/."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("model", "indexer", "app", "dataprep", "imaging", "bench")
SKIP_DIRS = {".venv", ".git", "tests", "data", "checkpoints", "build", "node_modules"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    files = [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")]
    files += list(REPO.glob("*.py"))
    return {module_name(p): p for p in files if "__pycache__" not in p.parts}


def imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Dotted names an import statement may load: ``from a.b import c`` gives a.b and a.b.c."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:  # relative import
        anchor = module.split(".") if is_package else module.split(".")[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, base] if base else anchor)
    return [base] + [f"{base}.{alias.name}" for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):  # every import: top level, in functions, under TYPE_CHECKING
            for target in imported(node, name, is_package):
                while target and target not in modules:  # a name inside a module -> the module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "indexer.build" in graph["indexer"]  # under TYPE_CHECKING in the door
    assert "model" in graph["model.evaluate"]  # inside a function
    assert "dataprep" in graph["indexer.catalog"]  # through a door


def test_no_import_cycle_between_project_modules():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


DOORS = ("indexer", "dataprep", "imaging")  # packages whose callers import from __init__ only


def test_other_packages_import_indexer_dataprep_and_imaging_through_their_door():
    graph = import_graph()
    through_side_doors = sorted(
        f"{src} -> {dst}" for src, targets in graph.items() for dst in targets
        if dst.partition(".")[0] in DOORS and "." in dst
        and src.partition(".")[0] != dst.partition(".")[0])
    assert through_side_doors == []


def _edits_sys_path(node: ast.AST) -> bool:
    def is_sys_path(n: ast.AST) -> bool:
        return (isinstance(n, ast.Attribute) and n.attr == "path"
                and isinstance(n.value, ast.Name) and n.value.id == "sys")

    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return is_sys_path(node.func.value) or (
            node.func.attr == "addsitedir" and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "site")
    if isinstance(node, ast.Assign | ast.AugAssign):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        return any(is_sys_path(t) or (isinstance(t, ast.Subscript) and is_sys_path(t.value))
                   for t in targets)
    return False


def test_no_sys_path_edits_outside_tests():
    offenders = []
    for path in REPO.rglob("*.py"):
        if SKIP_DIRS & set(path.relative_to(REPO).parts):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        offenders += [f"{path.relative_to(REPO)}:{n.lineno}" for n in ast.walk(tree)
                      if _edits_sys_path(n)]
    assert offenders == []


def test_an_items_look_is_every_metadata_attribute_but_its_names(tmp_path):
    from dataprep import read_looks
    assert read_looks(tmp_path) == {}  # no metadata.csv
    (tmp_path / "metadata.csv").write_text(
        "id,category,title,colour,sleeve,description\n"
        "a,tops,Red tee,red,short,Soft cotton\n"
        "b,tops,Another red tee,red,short,Slub jersey\n"
        "c,tops,Red tank,red,,Rib knit\n", encoding="utf-8")
    looks = read_looks(tmp_path)
    assert looks == {"a": ("tops", "red", "short"), "b": ("tops", "red", "short"),
                     "c": ("tops", "red", "")}
