"""The package's layout tells its architecture: source where the import name says, layers that only point down.

These tests read the source with ``ast`` (they import nothing from the package), so an import
hidden in a function or behind ``TYPE_CHECKING`` counts like any other: an import that dodges a
cycle is still a cycle.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "components"
PACKAGE = SOURCE / "mleks"

# The ground floor: what every layer may use, and which itself uses no component.
GROUND = {"mleks.errors", "mleks.vocabulary"}
# Subpackages of helpers (data, manifests, checks, review, AWS building blocks, test tooling).
HELPERS = ("mleks.catalogs", "mleks.manifests", "mleks.validation", "mleks.infra", "mleks.review", "mleks.testing")
# The composite layer: MLPlatform builds from the components; nothing below it imports it.
PLATFORM = "mleks.platform"


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every mleks module ``path`` imports, wherever the import statement sits."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mleks":
            # ``from mleks.catalogs import gpu`` imports the module mleks.catalogs.gpu; only a name
            # that is not a submodule (a class, a constant) is taken from the package itself.
            submodules = {f"{node.module}.{a.name}" for a in node.names} & known
            out |= submodules
            if len(submodules) < len(node.names) and node.module in known:
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, known) - {name} for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), plus modules that import themselves."""
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


def _top_level(module: str) -> bool:
    """A module directly in the package (a component, the CLI, the ground floor), not in a subpackage."""
    return module.count(".") == 1 and not any(module == h for h in HELPERS)


def test_the_cycle_finder_finds_a_cycle_and_a_long_one():
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_of_the_package_takes_part_in_an_import_cycle():
    assert _cycles(_graph()) == []


def test_helpers_never_import_components():
    """Catalogs, manifest helpers, validation, AWS building blocks, review and test tooling use the ground floor only."""
    graph = _graph()
    upward = {
        (module, target)
        for module, targets in graph.items()
        if module.startswith(HELPERS)
        for target in targets
        if _top_level(target) and target not in GROUND and target != "mleks"
    }
    assert upward == set()


def test_no_component_or_helper_imports_the_platform_built_on_top_of_them():
    graph = _graph()
    below = {m for m, targets in graph.items() if not m.startswith(PLATFORM) and m != "mleks" and any(t.startswith(PLATFORM) for t in targets)}
    assert below == set()


def test_the_ground_floor_imports_no_component_and_no_manifest_helper():
    graph = _graph()
    for module in GROUND:
        assert {t for t in graph[module] if not t.startswith(("mleks.errors", "mleks.catalogs"))} == set(), module


def test_the_cluster_base_imports_no_add_on_and_no_group():
    """Subclasses and the groups build on the base; the base knows neither (the groups add their node daemons)."""
    imported = _graph()["mleks.cluster_base"]
    assert {t for t in imported if _top_level(t)} <= GROUND


def test_shared_labels_and_taints_are_defined_on_the_ground_floor_only():
    names = ("ROLE_LABEL", "NODE_GROUP_LABEL", "GPU_TAINT", "GPU_TOLERATION", "SYSTEM_NODE_SELECTOR", "PREEXISTING_NAMESPACES", "ROLE_ARN_ANNOTATION")
    defined: dict[str, list[str]] = {}
    for module, path in _modules().items():
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
            for target in targets:
                if isinstance(target, ast.Name) and target.id in names:
                    defined.setdefault(target.id, []).append(module)
    assert defined == {name: ["mleks.vocabulary"] for name in names}


def test_the_source_sits_where_its_import_name_says_with_no_symlink():
    assert (PACKAGE / "__init__.py").is_file()
    assert sorted(p.name for p in SOURCE.iterdir() if not p.name.endswith(".egg-info")) == ["mleks"]
    links = [str(Path(d, n).relative_to(ROOT)) for d, dirs, files in os.walk(ROOT) for n in dirs + files if os.path.islink(os.path.join(d, n))]
    assert [p for p in links if not p.startswith((".venv", ".git"))] == []


def test_the_package_exports_lazily_exactly_what_type_checkers_see():
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    exports = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "_EXPORTS")
    lazy = {k.value: v.value for k, v in zip(exports.value.keys, exports.value.values, strict=True)}  # type: ignore[attr-defined, union-attr]
    guarded = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", "") == "TYPE_CHECKING")
    static = {a.name: node.module for node in guarded.body if isinstance(node, ast.ImportFrom) for a in node.names}
    assert lazy == static


def test_the_diff_and_the_command_line_load_no_pulumi_sdk_and_no_component():
    import subprocess
    import sys

    code = "import sys, mleks, mleks.cli, mleks.review.diff; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    components = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "errors", "vocabulary", "cli"}
    assert [m for m in loaded if m.split(".")[0].startswith("pulumi")] == []
    assert [m for m in loaded if m.startswith("mleks.") and m.split(".")[1] in components] == []
