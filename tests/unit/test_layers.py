"""The package's layers, as the README draws them: no import cycles, and
Flask and werkzeug only in the web layer."""

import ast
import subprocess
import sys
from pathlib import Path

import restreamer

PACKAGE = Path(restreamer.__file__).parent
WEB_ONLY = ("flask", "werkzeug", "gunicorn")


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


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports when it runs, as absolute names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            # "from . import apis" imports a module, not a name
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m != name}
            for name, path in modules.items()}



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
    code = ("import sys, restreamer.core.relay, restreamer.ops.statistics, restreamer.sources;"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('flask', 'werkzeug', 'gunicorn')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                         check=True, cwd=PACKAGE.parent).stdout.strip()
    assert out == "[]"
