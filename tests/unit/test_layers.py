"""The package's layers, as the README draws them: every import points down
the layers (or stays within one), no import cycles, and Flask and werkzeug
only in the web layer.  Imports inside functions count; those under
``if TYPE_CHECKING:`` never run and do not."""

import ast
import subprocess
import sys
from pathlib import Path
from typing import Iterable

import restreamer

PACKAGE = Path(restreamer.__file__).parent
WEB_ONLY = ("flask", "werkzeug", "gunicorn")

#: The layers from the bottom up, each by the modules (and packages) it is made of.
#: A module may import from its own layer and those below it, never above.
LAYERS = [
    ("ts", ("restreamer.ts",)),
    ("base", ("restreamer.base", "restreamer.version", "restreamer.redact", "restreamer.fdlimit")),
    ("log", ("restreamer.log",)),
    ("sources", ("restreamer.sources",)),
    ("config", ("restreamer.config",)),
    ("core", ("restreamer.core",)),
    ("ops", ("restreamer.ops",)),
    ("assembly", ("restreamer.assembly",)),  # wires core and ops together
    ("web", ("restreamer.web",)),
    ("cli", ("restreamer.cli", "restreamer.__main__", "restreamer")),  # and the package's face
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _nodes(tree: ast.AST):
    """Every node, but those under ``if TYPE_CHECKING:``: such imports never run."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            continue
        yield node
        yield from _nodes(node)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, modules: Iterable[str] = ()) -> set[str]:
    """Every module ``path`` imports when it runs, as absolute names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    return _imports_in(path.read_text(), package, set(modules))


def _imports_in(source: str, package: str, modules: set[str]) -> set[str]:
    """What ``source``, a module of ``package``, imports when it runs.

    ``from . import apis`` imports the module ``apis`` (one of ``modules``),
    not its package: a package's ``__init__`` runs before any of its modules
    anyway, so depending on it says nothing about layers.
    """
    found = set()
    for node in _nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                found.add(submodule if submodule in modules else target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m in _imports(path, modules) if m in modules and m != name}
            for name, path in modules.items()}


def _layer(module: str) -> int:
    """The index in :data:`LAYERS` of the layer ``module`` belongs to (the longest prefix wins)."""
    best, length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = index, len(prefix)
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")
    return best


def test_every_import_points_down_the_layers():
    upward = []
    for name, targets in sorted(_graph().items()):
        for target in sorted(targets):
            if _layer(target) > _layer(name):
                upward.append(f"{name} ({LAYERS[_layer(name)][0]}) imports {target} "
                              f"({LAYERS[_layer(target)][0]})")
    assert not upward, "imports running up the layers:\n" + "\n".join(upward)


def test_lazy_imports_count_and_type_checking_ones_do_not():
    source = ("from typing import TYPE_CHECKING\n"
              "from . import apis, helper\n"
              "if TYPE_CHECKING:\n    from ..core import hub\n"
              "def later():\n    from ..ops.metrics import exposition\n")
    assert _imports_in(source, "restreamer.web", {"restreamer.web.apis"}) == {
        "typing", "restreamer.web.apis", "restreamer.web", "restreamer.ops.metrics"}


def test_the_import_graph_has_no_cycle():
    graph = _graph()
    done: set[str] = set()

    def visit(name: str, trail: list[str]) -> None:
        if name in trail:
            cycle = trail[trail.index(name):] + [name]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        for target in sorted(graph[name]):
            visit(target, trail + [name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])


def test_only_the_web_layer_imports_flask_werkzeug_or_gunicorn():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        name = _module_name(path)
        if name.startswith("restreamer.web") or name == "restreamer.cli":
            continue
        for target in _imports(path):
            if target.split(".")[0] in WEB_ONLY:
                offenders.append(f"{name} imports {target}")
    assert not offenders


def test_importing_the_core_loads_no_web_framework():
    code = ("import sys, restreamer.assembly, restreamer.sources;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug', 'gunicorn')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         check=True, cwd=PACKAGE.parent).stdout.strip()
    assert out == "[]"


#: Calls that one helper module makes for the whole package: (module, function) -> the helper.
ONE_HELPER = {
    ("fcntl", "flock"): "restreamer.base.lockfile",
    ("requests", "Session"): "restreamer.base.outbound",
    ("requests", "get"): "restreamer.base.outbound",
    ("requests", "request"): "restreamer.base.outbound",
}


def test_lock_files_and_outbound_http_each_have_one_helper():
    callers: dict[str, set[str]] = {helper: set() for helper in ONE_HELPER.values()}
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name)):
                helper = ONE_HELPER.get((node.func.value.id, node.func.attr))
                if helper is not None:
                    callers[helper].add(name)
    assert callers == {helper: {helper} for helper in ONE_HELPER.values()}
