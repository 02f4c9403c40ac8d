"""minijax's modules import each other without cycles, and none is hidden by a
function of the same name (``import minijax.jvp`` would give the function)."""
import ast
import importlib
from pathlib import Path

import minijax

PACKAGE = Path(minijax.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """The minijax modules a module imports at its top level (``from minijax.lax
    import lax`` is the module minijax.lax.lax)."""
    found = set()
    for node in ast.parse(MODULES[name].read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("minijax"):
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in MODULES)
    return found - {name}


def test_no_module_imports_itself_through_others():
    graph = {name: imports_of(name) for name in MODULES}
    done, path = set(), []

    def visit(name):
        assert name not in path, f"import cycle: {' -> '.join(path + [name])}"
        if name in done or name not in graph:
            return
        path.append(name)
        for dep in sorted(graph[name]):
            visit(dep)
        path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_every_module_is_reachable_by_its_name():
    for name in MODULES:
        module = importlib.import_module(name)
        parent, _, attribute = name.rpartition(".")
        if parent:
            assert getattr(importlib.import_module(parent), attribute) is module, name
