"""The re-run engine is used through its interface (kubelab/engine/api.py), not its parts."""

import ast
from pathlib import Path

from kubelab import engine
from kubelab.engine import api, callstack, hoststate, once, placement

LIBRARY = Path(__file__).resolve().parents[2] / "kubelab"
INTERNAL = {"once", "hoststate", "placement", "callstack"}

# Modules outside kubelab/engine/ that may still import one of the engine's internal parts,
# each with the names it uses from it.
ALLOWED = {
    # How a host's preparation is scheduled is the cluster workflow's alone: it prepares one
    # host at a time and reads ahead at the end of each host; no component has a use for it.
    ("workflows/cluster.py", "once"): {"one_host_at_a_time"},
    ("workflows/cluster.py", "hoststate"): {"read_ahead"},
}


def _internal_imports(tree: ast.Module) -> set[str]:
    """The engine's internal parts ``tree`` imports, however it spells the import."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            module = (node.module or "").removeprefix("kubelab.").split(".")
            if module[0] != "engine" or (node.level == 0 and node.module == "engine"):
                continue
            if len(module) > 1:
                found.add(module[1])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[:2] == ["kubelab", "engine"] and len(parts) > 2:
                    found.add(parts[2])
    return found & INTERNAL


def _used(tree: ast.Module, module: str) -> set[str]:
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == module
    }


def test_modules_outside_the_engine_import_its_interface_only():
    wrong, allowed_seen = [], set()
    for path in sorted(LIBRARY.rglob("*.py")):
        name = path.relative_to(LIBRARY).as_posix()
        if name.startswith("engine/"):
            continue
        tree = ast.parse(path.read_text())
        for module in sorted(_internal_imports(tree)):
            if (name, module) not in ALLOWED:
                wrong.append(f"{name} imports engine.{module}")
                continue
            allowed_seen.add((name, module))
            extra = _used(tree, module) - ALLOWED[name, module]
            if extra:
                wrong.append(f"{name} uses {module}.{', '.join(sorted(extra))}")
    assert wrong == [], "use kubelab.engine's interface (api.py) instead"
    assert allowed_seen == set(ALLOWED), "an allow-list entry no longer needed"


def test_the_check_sees_each_spelling_of_an_internal_import():
    for source in (
        "from ..engine import bounds, once",
        "from ..engine.hoststate import manage",
        "from kubelab.engine import placement",
        "import kubelab.engine.callstack",
    ):
        assert _internal_imports(ast.parse(source)), source
    for source in ("from .. import engine", "from ..engine import shell", "from .once import x"):
        assert not _internal_imports(ast.parse(source)), source


def test_the_interface_is_the_engines_own_functions():
    """No wrapper: no frame added to the stack pyinfra orders operations by, no cost."""
    parts = (once, hoststate, placement, callstack)
    for name in api.__all__:
        value = getattr(engine, name)
        assert value is getattr(api, name)
        assert any(value in vars(part).values() for part in parts), name
    assert set(engine.__all__) == set(api.__all__)


def test_the_verbs_are_the_engines_own():
    from kubelab.engine import common, downloads

    assert engine.place is common.place and engine.put is common.put
    assert engine.service is common.service and engine.install is downloads.install
    assert set(engine.VERBS) == {"place", "put", "service", "install"}
