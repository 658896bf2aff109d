"""The package's shape, checked from its source (AST, nothing imported): no import
circle, no private name imported across modules, options a leaf, a thin plugin, a slim
Run. Each check is a pure function of the parsed tree, so a test feeds it a small
made-up package to show that it can fail."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cnnclaims"


def module_name(path: Path, root: Path) -> str:
    """Dotted name of ``path`` (a .py file under ``root``, the package folder)."""
    parts = [root.name, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def parse_package(root: Path) -> dict[str, tuple[ast.Module, bool]]:
    """{module name: (tree, is_package)} of every .py file under ``root``."""
    return {
        module_name(p, root): (ast.parse(p.read_text(), str(p)), p.name == "__init__.py")
        for p in sorted(root.rglob("*.py"))
    }


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(modules: dict, top: bool = False) -> dict[str, list[tuple[str, str | None]]]:
    """{module: [(imported module, imported name or None), ...]}, package-internal only;
    every import statement (module level and inside functions: a lazy import is still
    a dependency), or module-level ones only with ``top``."""
    root = next(iter(modules)).split(".")[0]
    out: dict[str, list[tuple[str, str | None]]] = {}
    for name, (tree, is_package) in modules.items():
        found = []
        nodes = tree.body if top else ast.walk(tree)
        for node in nodes:
            if isinstance(node, ast.Import):
                found += [(a.name, None) for a in node.names if a.name.split(".")[0] == root]
            elif isinstance(node, ast.ImportFrom):
                target = _absolute(node, name, is_package)
                if target.split(".")[0] != root:
                    continue
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    # `from . import stats` imports a module, not a name
                    found.append((sub, None) if sub in modules else (target, alias.name))
        out[name] = found
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary circle's members, one list per strongly connected component
    with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def dependency_graph(modules: dict) -> dict[str, set[str]]:
    """Module -> the package modules it imports. A package's ``__init__`` importing its
    own submodules (re-exports) is not an edge back: importing ``pkg.sub`` runs
    ``pkg/__init__`` first by Python's rules, which is not a design dependency."""
    graph: dict[str, set[str]] = {}
    for name, found in imports(modules).items():
        deps = {m for m, _ in found if m in modules and m != name}
        graph[name] = {d for d in deps if not (modules[name][1] and d.startswith(name + "."))}
    return graph


def private_imports(modules: dict) -> list[str]:
    """'importer: module._name' for each private name imported from another module."""
    bad = []
    for name, found in imports(modules).items():
        for target, imported in found:
            if imported and imported.startswith("_") and not imported.startswith("__") and target != name:
                bad.append(f"{name}: {target}.{imported}")
    return sorted(bad)


def top_level_defs(tree: ast.Module) -> list[ast.AST]:
    return [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))]


def _is_fixture(node: ast.AST) -> bool:
    for d in getattr(node, "decorator_list", []):
        target = d.func if isinstance(d, ast.Call) else d
        if ast.unparse(target) in ("pytest.fixture", "fixture"):
            return True
    return False


def not_hooks_or_fixtures(tree: ast.Module) -> list[str]:
    """Top-level functions and classes of a plugin module that are neither pytest hooks
    (``pytest_*``) nor fixtures, nor a plugin object holding hooks only."""
    bad = []
    for node in top_level_defs(tree):
        if isinstance(node, ast.ClassDef):
            methods = [m.name for m in node.body if isinstance(m, ast.FunctionDef)]
            if all(m.startswith("pytest_") or m == "__init__" for m in methods) and methods:
                continue
            bad.append(node.name)
        elif not (node.name.startswith("pytest_") or _is_fixture(node)):
            bad.append(node.name)
    return bad


def class_lines(tree: ast.Module, name: str) -> int:
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
    return node.end_lineno - node.lineno + 1


# -- the checks on this package ------------------------------------------------------


@pytest.fixture(scope="module")
def package():
    return parse_package(PACKAGE)


def test_no_import_circle(package):
    assert cycles(dependency_graph(package)) == [], "modules that import each other (directly or round a circle)"


def test_no_private_name_imported_across_modules(package):
    assert private_imports(package) == [], "make the name public in its module, or move the code that needs it there"


def leaf_violations(modules: dict, name: str) -> list[str]:
    """What module ``name`` imports at module level that is not itself a leaf (a
    module importing nothing of the package at all, lazily included)."""
    every = imports(modules)
    return sorted({m for m, _ in imports(modules, top=True)[name] if m in modules and every[m]})


def test_options_is_a_leaf(package):
    """The options table is read by pytest at start-up and by argparse: at module level
    it imports only leaves (the executors' registry, which imports nothing of the
    package), so loading it cannot start TensorFlow or close a circle."""
    assert leaf_violations(package, "cnnclaims.options") == []


def test_plugin_holds_hooks_and_fixtures_only(package):
    tree, _ = package["cnnclaims.pytest_plugin"]
    assert not_hooks_or_fixtures(tree) == []


def test_run_is_slim(package):
    tree, _ = package["cnnclaims.run"]
    assert class_lines(tree, "Run") < 150


# -- each check can fail --------------------------------------------------------------


def _fake(tmp_path: Path, files: dict[str, str]) -> dict:
    root = tmp_path / "pkg"
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return parse_package(root)


def test_checks_can_fail(tmp_path):
    fake = _fake(
        tmp_path,
        {
            "__init__.py": "from .a import x\n",
            "a.py": "from .b import _helper\nx = 1\n",
            "b.py": "def _helper():\n    from .c import y\n",  # lazy import: still a dependency
            "c.py": "def y():\n    from . import a\n",
            "options.py": "from .a import x\n",
            "sub/__init__.py": "from .leaf import z\n",  # a package's re-export is no circle
            "sub/leaf.py": "from ..sub import w\nz = 1\n",
            "plugin.py": "import pytest\n@pytest.fixture\ndef f():\n    pass\n"
            "def pytest_configure(config):\n    pass\ndef helper():\n    pass\n"
            "class Run:\n    def a(self):\n        pass\n",
        },
    )
    assert cycles(dependency_graph(fake)) == [["pkg.a", "pkg.b", "pkg.c"]]
    assert private_imports(fake) == ["pkg.a: pkg.b._helper"]
    assert leaf_violations(fake, "pkg.options") == ["pkg.a"]
    assert not_hooks_or_fixtures(fake["pkg.plugin"][0]) == ["helper", "Run"]
    assert class_lines(fake["pkg.plugin"][0], "Run") == 3


def unnamed_in_layout(page: str, root: Path) -> list[str]:
    """Modules and packages under ``root`` that the layout page (docs/layout.md, one
    line per module) does not name (as `name` or `name/`)."""
    names = {p.stem for p in root.rglob("*.py") if p.name != "__init__.py"}
    names |= {p.name for p in root.rglob("*") if p.is_dir() and p.name != "__pycache__"}
    return sorted(n for n in names if f"`{n}`" not in page and f"`{n}/`" not in page)


def test_layout_page_names_every_module(tmp_path):
    page = (PACKAGE.parents[1] / "docs" / "layout.md").read_text()
    assert unnamed_in_layout(page, PACKAGE) == [], "add a line for it to docs/layout.md"
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "new_module.py").write_text("")
    assert unnamed_in_layout("- `old`\n", tmp_path / "pkg") == ["new_module"]  # the check can fail
