"""The shape of the product, read from its source: import graph, module sizes, the data boundary.

Every module of the packages ``setup.cfg`` declares (``tango_groups`` and below, ``devices`` which
is installed as ``tango_groups.devices``) is parsed with ``ast``, never imported. Each ``import`` /
``from ... import`` anywhere in a module (top level, functions, ``TYPE_CHECKING`` blocks) is an
edge of the import graph: ``from pkg import name`` goes to the submodule ``pkg.name`` when there is
one, else to ``pkg`` itself (its ``__init__``); relative imports are resolved like Python does.

* no import cycle (each cycle found is reported with the modules on it);
* no module over ``MAX_LINES`` lines;
* no module outside ``tango_groups.data`` and ``tango_groups.bliss1`` imports ``redis``: Redis
  commands are issued there (and by blissdata in ``tango_groups.bliss2``), and
  ``tango_groups.data.connection`` hands out what the rest needs (the ``connect`` function, the
  client type, the exception types);
* the data models are peers: nothing in ``tango_groups.bliss1`` imports ``tango_groups.bliss2``,
  and the reverse;
* ``tango_groups.scanning`` reaches a data model through ``scanning.model.DataModel`` only: none of
  its modules imports ``tango_groups.bliss2`` or names a ``bliss2`` attribute (the model is chosen
  in ``tango_groups.session``);
* blissdata 2.x (the optional ``[bliss2]`` extra) is imported by the Bliss 2 modules only
  (``tango_groups.bliss2``, ``*bliss2*`` modules), and importing any other module loads none of
  them (they are imported in functions, or for type checking): a bliss1
  session never loads it.
"""

from __future__ import annotations

import ast
import configparser
import dataclasses
from pathlib import Path

import pytest

from tango_groups.data import connection

ROOT = Path(__file__).parents[2]
MAX_LINES = 400
DATA = "tango_groups.data"
BLISS1 = "tango_groups.bliss1"
BLISS2 = "tango_groups.bliss2"
SCANNING = "tango_groups.scanning"
CONNECTION = "tango_groups.data.connection"


@dataclasses.dataclass(frozen=True)
class Module:
    name: str
    path: Path

    @property
    def package(self) -> str:
        """The package relative imports start from (a package's ``__init__`` is its own)."""
        return self.name if self.path.name == "__init__.py" else self.name.rpartition(".")[0]


def _declared_packages() -> dict[str, Path]:
    """Package name -> its directory, from ``packages`` and ``package_dir`` of setup.cfg."""
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    options = config["options"]
    mapped = {}
    for line in options.get("package_dir", "").splitlines():
        if "=" in line:
            name, _, directory = line.partition("=")
            mapped[name.strip()] = ROOT / directory.strip()
    packages = {}
    for name in options["packages"].split():
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):  # the longest mapped ancestor decides
            ancestor = ".".join(parts[:cut])
            if ancestor in mapped:
                packages[name] = mapped[ancestor].joinpath(*parts[cut:])
                break
        else:
            packages[name] = ROOT.joinpath(*parts)
    return packages


def _modules() -> dict[str, Module]:
    modules = {}
    for package, directory in _declared_packages().items():
        for path in sorted(directory.glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = Module(name, path)
    return modules


MODULES = _modules()


def _imports(tree: ast.Module, package: str) -> list[tuple[str, list[str]]]:
    """(absolute module imported from, names imported) for every import statement of ``tree``,
    relative ones resolved from ``package``; ``import a.b`` gives ``("a.b", [])``."""
    found: list[tuple[str, list[str]]] = []
    for statement in ast.walk(tree):
        if isinstance(statement, ast.Import):
            found += [(alias.name, []) for alias in statement.names]
        elif isinstance(statement, ast.ImportFrom):
            if statement.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - statement.level + 1])
                source = f"{base}.{statement.module}" if statement.module else base
            else:
                source = statement.module or ""
            found.append((source, [alias.name for alias in statement.names]))
    return found


def _module_imports(module: Module) -> list[tuple[str, list[str]]]:
    return _imports(ast.parse(module.path.read_text(), str(module.path)), module.package)


def _targets(source: str, names: list[str]) -> set[str]:
    """The product modules an import statement runs (the deepest one for dotted names)."""
    targets = set()
    for name in names:
        if f"{source}.{name}" in MODULES:
            targets.add(f"{source}.{name}")
        elif source in MODULES:
            targets.add(source)
    if not names:
        parts = source.split(".")
        for cut in range(len(parts), 0, -1):
            if ".".join(parts[:cut]) in MODULES:
                targets.add(".".join(parts[:cut]))
                break
    return targets


def import_graph() -> dict[str, set[str]]:
    graph = {name: set() for name in MODULES}
    for name, module in MODULES.items():
        for source, names in _module_imports(module):
            graph[name] |= _targets(source, names) - {name}
    return graph


def tangles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm): every
    module of one reaches every other, so each is on a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per tangle: a shortest path from its first module back."""
    return [_shortest_cycle(graph, component) for component in tangles(graph)]


def _shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    start, members = component[0], set(component)
    paths = {start: [start]}
    frontier = [start]
    while True:
        next_frontier = []
        for node in frontier:
            for step in sorted(graph[node] & members):
                if step == start:
                    return paths[node] + [start]
                if step not in paths:
                    paths[step] = paths[node] + [step]
                    next_frontier.append(step)
        frontier = next_frontier


# -- the checker itself ---------------------------------------------------------------------------
def test_every_declared_package_is_parsed():
    assert {"tango_groups", "tango_groups.session", "tango_groups.cli",
            "tango_groups.devices.sequence_manager", CONNECTION} <= set(MODULES)
    tops = [ROOT / "tango_groups", ROOT / "devices"]
    for directory in {path.parent for top in tops for path in top.rglob("*.py")}:
        assert any(module.path.parent == directory for module in MODULES.values()), (
            f"{directory.relative_to(ROOT)} holds modules but is no package of setup.cfg")


def test_imports_resolve_like_python():
    session = _targets("tango_groups.data", ["channel", "connection"])
    assert session == {"tango_groups.data.channel", CONNECTION}
    assert _targets("tango_groups.data.connection", ["connect"]) == {CONNECTION}
    assert _targets("tango_groups", ["__version__"]) == {"tango_groups"}
    assert _targets("tango_groups.bliss1.keys", []) == {"tango_groups.bliss1.keys"}
    assert _targets("redis", []) == set()
    relative = ast.parse("from .. import session\nfrom ..bliss1.keys import x\nfrom . import chain")
    assert [_targets(*found) for found in _imports(relative, "tango_groups.scanning")] == [
        {"tango_groups.session"}, {"tango_groups.bliss1.keys"}, {"tango_groups.scanning.chain"}]


def test_cycle_finder_reports_the_modules_on_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert tangles({"a": {"b", "c"}, "b": {"a"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


# -- the product ----------------------------------------------------------------------------------
def test_no_import_cycles():
    graph = import_graph()
    found = [f"{' -> '.join(_shortest_cycle(graph, tangle))} (on cycles: {', '.join(tangle)})"
             for tangle in tangles(graph)]
    assert not found, "import cycles:\n" + "\n".join(found)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name):
    lines = len(MODULES[name].path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].path.relative_to(ROOT)}: {lines} lines"


def test_redis_is_imported_by_the_data_packages_only():
    """redis-py in ``tango_groups.data`` and ``tango_groups.bliss1``; ``tango_groups.bliss2``
    reaches Redis through blissdata (and the client types ``data.connection`` hands out)."""
    outside = {
        name: sorted({source for source, _ in _module_imports(module)
                      if _in_package(source, "redis")})
        for name, module in MODULES.items()
        if not (_in_package(name, DATA) or _in_package(name, BLISS1))
    }
    offenders = {name: sources for name, sources in outside.items() if sources}
    assert not offenders, f"import redis outside {DATA} and {BLISS1}: {offenders}"


@pytest.mark.parametrize(("model", "other"), [(BLISS1, BLISS2), (BLISS2, BLISS1)])
def test_neither_data_model_imports_the_other(model, other):
    graph = import_graph()
    offenders = {name: sorted(t for t in targets if _in_package(t, other))
                 for name, targets in graph.items() if _in_package(name, model)}
    offenders = {name: targets for name, targets in offenders.items() if targets}
    assert not offenders, f"{model} imports {other}: {offenders}"


def bliss2_mentions(tree: ast.Module, package: str) -> list[str]:
    """Where code of ``tree`` names the Bliss 2 model: imports of ``tango_groups.bliss2``,
    attributes or names ``bliss2`` (docstrings and comments do not count)."""
    found = [f"import {source}" for source, _ in _imports(tree, package)
             if _in_package(source, BLISS2)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == "bliss2":
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Name) and node.id == "bliss2":
            found.append(f"line {node.lineno}: {node.id}")
    return found


def test_the_bliss2_finder_sees_imports_attributes_and_names_only():
    tree = ast.parse('"""bliss2 in a docstring"""\nfrom ..bliss2.writer import W  # bliss2\n'
                     "import tango_groups.bliss2\nif session.bliss2 is None:\n    bliss2 = 1\n"
                     "x = 'bliss2'\n")
    assert bliss2_mentions(tree, SCANNING) == [
        "import tango_groups.bliss2.writer", "import tango_groups.bliss2",
        "line 4: session.bliss2", "line 5: bliss2"]


def test_scanning_reaches_the_models_through_their_interface():
    offenders = {name: found for name, module in MODULES.items() if _in_package(name, SCANNING)
                 for found in [bliss2_mentions(ast.parse(module.path.read_text()),
                                               module.package)] if found}
    assert not offenders, f"tango_groups.scanning names the Bliss 2 model: {offenders}"


def test_the_connection_module_hands_out_what_the_rest_needs():
    exported = set(connection.__all__)
    assert {"connect", "Redis", "RedisError", "RedisConnectionError",
            "RedisTimeoutError"} <= exported
    assert issubclass(connection.RedisConnectionError, connection.RedisError)
    assert issubclass(connection.RedisTimeoutError, connection.RedisError)


def _eager_imports(tree: ast.Module, package: str) -> list[tuple[str, list[str]]]:
    """The imports of ``tree`` that run when the module is imported: not inside a function, nor
    under ``if TYPE_CHECKING:``."""
    def walk(statements: list[ast.stmt]) -> list[ast.stmt]:
        found: list[ast.stmt] = []
        for statement in statements:
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                found.append(statement)
            elif isinstance(statement, ast.If) and "TYPE_CHECKING" in ast.unparse(statement.test):
                found += walk(statement.orelse)
            elif not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for field in ("body", "orelse", "finalbody"):
                    found += walk(getattr(statement, field, []))
                for handler in getattr(statement, "handlers", []):
                    found += walk(handler.body)
        return found

    return _imports(ast.Module(body=walk(tree.body), type_ignores=[]), package)


def _in_package(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_eager_import_finder_skips_functions_and_type_checking():
    tree = ast.parse("import a\nif TYPE_CHECKING:\n    import b\nelse:\n    import c\n"
                     "def f():\n    import d\nclass K:\n    import e\n"
                     "try:\n    import g\nexcept ImportError:\n    import h\n")
    assert [source for source, _ in _eager_imports(tree, "p")] == ["a", "c", "e", "g", "h"]


def _is_bliss2_side(name: str) -> bool:
    """Modules of the Bliss 2 side are named so: the package ``tango_groups.bliss2`` and modules
    such as ``tango_groups.service.bliss2``."""
    return "bliss2" in name.split(".")[-1] or _in_package(name, BLISS2)


def _eager_graph() -> tuple[dict[str, set[str]], set[str]]:
    """Module -> the product modules it imports eagerly; and the modules that import blissdata
    eagerly themselves."""
    graph, direct = {}, set()
    for name, module in MODULES.items():
        tree = ast.parse(module.path.read_text(), str(module.path))
        found = _eager_imports(tree, module.package)
        graph[name] = set().union(set(), *[_targets(*each) for each in found]) - {name}
        if any(_in_package(source, "blissdata") for source, _ in found):
            direct.add(name)
    return graph, direct


def test_blissdata_is_imported_by_bliss2_modules_only():
    offenders = {
        name: sorted({source for source, _ in _module_imports(module)
                      if _in_package(source, "blissdata")})
        for name, module in MODULES.items() if not _is_bliss2_side(name)
    }
    offenders = {name: sources for name, sources in offenders.items() if sources}
    assert not offenders, f"import blissdata outside the bliss2 modules: {offenders}"


def test_bliss1_modules_never_load_blissdata():
    """Importing any module that is not of the Bliss 2 side loads no blissdata: the Bliss 2 side
    is imported lazily (in a function, or for type checking only)."""
    graph, direct = _eager_graph()
    loads = {}
    for name in MODULES:
        if _is_bliss2_side(name):
            continue
        seen, todo = set(), [name]
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo += graph[module]
        if seen & direct:
            loads[name] = sorted(seen & direct)
    assert not loads, f"these modules load blissdata when imported (through): {loads}"


SERVICES = {model: f"tango_groups.service.{model}" for model in ("bliss1", "bliss2", "both")}


def test_each_models_service_never_imports_the_other_model():
    graph = import_graph()
    bliss1, bliss2 = SERVICES["bliss1"], SERVICES["bliss2"]
    assert not sorted(target for target in graph[bliss1] if _is_bliss2_side(target))
    assert not sorted(target for target in graph[bliss2]
                      if target == bliss1 or _in_package(target, "tango_groups.bliss1"))


def test_services_are_reached_through_their_interface():
    """``both`` is composed through ``SequenceService`` (factories given to it), and the device
    knows that interface only: its configuration alone builds the services."""
    graph = import_graph()
    implementations = {*SERVICES.values(), "tango_groups.service.core"}
    assert not graph[SERVICES["both"]] & implementations
    assert "tango_groups.service.protocol" in graph[SERVICES["both"]]
    users = {name for name, targets in graph.items()
             if targets & implementations and _in_package(name, "tango_groups.devices")}
    assert users == {"tango_groups.devices.configuration"}


def test_the_shared_data_package_imports_neither_model():
    graph = import_graph()
    offenders = {name: sorted(target for target in targets
                              if _in_package(target, "tango_groups.bliss1")
                              or _in_package(target, BLISS2))
                 for name, targets in graph.items() if _in_package(name, DATA)}
    assert not {name: found for name, found in offenders.items() if found}
