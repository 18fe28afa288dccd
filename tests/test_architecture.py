"""The package's structure (DESIGN.md, "Layout"): layers whose imports point one way, no import
circle, no import of another package's private module, and every declared dependency used.

Imports are read from the source (every ``import`` statement, at module level or inside a
function: a lazy import is still an edge), so the checks hold for code paths the tests do not run.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rapidseval"

#: rank of each layer: a module may import modules of its own layer or of a lower rank
#: (the package's ``__init__`` is the public face and may import anything, lazily)
LAYERS = {
    "core": 0,
    "backend": 1,
    "cluster": 1,
    "io": 2,
    # domain: the TLC features and generator, the models, and the engines
    "features": 3,
    "data": 3,
    "models": 3,
    "metrics": 3,
    "replay": 3,
    "shift": 3,
    "backtest": 3,
    "checks": 3,
    "spec": 4,
    # presentation built from tables alone: below jobs, which writes report.html at the end of a run
    "report": 5,
    "jobs": 6,
    "cli": 7,
    "__main__": 7,  # python -m rapidseval: the command line
}
#: the spec imports only core and the registries' names (core.registry)
SPEC_MAY_IMPORT = ("rapidseval.core", "rapidseval.spec")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(module: str, path: Path) -> list[tuple[str, int]]:
    """(imported rapidseval module, line) for every import statement of ``module``."""
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # ``from pkg import name`` imports the module ``pkg.name`` when there is one
            targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in MODULES else origin
                       for alias in node.names]
        else:
            continue
        for target in targets:
            if target == "rapidseval" or target.startswith("rapidseval."):
                while target not in MODULES and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != module:
                    found.append((target, node.lineno))
    return found


EDGES = {module: _imports(module, path) for module, path in MODULES.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(ROOT)}:{line}"


def test_no_import_circle():
    graph = defaultdict(set)
    for module, targets in EDGES.items():
        for target, _ in targets:
            graph[module].add(target)
    # Tarjan's strongly connected components, iteratively
    index, low, on_stack, stack, circles, counter = {}, {}, set(), [], [], [0]
    for start in MODULES:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for succ in successors:
                if succ not in index:
                    index[succ] = low[succ] = counter[0]
                    counter[0] += 1
                    stack.append(succ)
                    on_stack.add(succ)
                    work.append((succ, iter(sorted(graph[succ]))))
                    break
                if succ in on_stack:
                    low[node] = min(low[node], index[succ])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        circles.append(sorted(component))
    assert not circles, f"import circles: {circles}"


def test_no_import_of_another_packages_private_module():
    bad = []
    for module, targets in EDGES.items():
        for target, line in targets:
            parts = target.split(".")
            private = [i for i, part in enumerate(parts) if part.startswith("_") and not part.startswith("__")]
            if not private:
                continue
            owner = ".".join(parts[: private[0]])
            if not (module == owner or module.startswith(owner + ".")):
                bad.append(f"{_where(module, line)} imports {target}")
    assert not bad, "\n".join(bad)


def test_imports_point_one_way_between_layers():
    bad = []
    for module, targets in EDGES.items():
        layer = _layer(module)
        if layer is None:  # the package's public face
            continue
        if layer == "cli" and all(_layer(target) is not None or target == "rapidseval" for target, _ in targets):
            targets = [(target, line) for target, line in targets if target != "rapidseval"]  # its version
        assert layer in LAYERS, f"{module}: a module outside the layers of DESIGN.md ({sorted(LAYERS)})"
        for target, line in targets:
            other = _layer(target)
            if other is None:
                bad.append(f"{_where(module, line)} imports the package root ({target})")
            elif layer == "spec" and not target.startswith(SPEC_MAY_IMPORT):
                bad.append(f"{_where(module, line)}: spec imports {target} (only core and registry names)")
            elif LAYERS[other] > LAYERS[layer]:
                bad.append(f"{_where(module, line)}: {layer} imports {target} (layer {other} is above it)")
    assert not bad, "\n".join(bad)


def _distribution_to_module(requirement: str) -> str:
    name = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()
    known = {"scikit-learn": "sklearn", "pyyaml": "yaml", "universal_pathlib": "upath", "dask-ml": "dask_ml",
             "cudf-cu13": "cudf", "dask-cudf-cu13": "dask_cudf", "cuml-cu13": "cuml", "cupy-cuda13x": "cupy",
             "dask-cuda": "dask_cuda", "mlflow-skinny": "mlflow"}
    return known.get(name, name.replace("-", "_"))


def _imported_top_level_names() -> set[str]:
    names = set()
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module)
    return names


#: the module an extra brings, where it is not named after the extra
EXTRA_MODULES = {"fsspec[http]": "fsspec.implementations.http"}


#: declared dependencies that rapidseval rightly never imports: the runtime backends of a declared
#: library, loaded by that library. MLflow's local ``sqlite:///`` tracking store (output.mlflow) is
#: built on SQLAlchemy and migrated by Alembic, which the slim ``mlflow-skinny`` does not bring;
#: rapidseval imports ``mlflow`` (rapidseval/jobs/tracking.py) and MLflow imports these two.
RUNTIME_BACKENDS = {"sqlalchemy": "mlflow", "alembic": "mlflow"}


def test_every_declared_dependency_is_imported_by_the_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = list(project["dependencies"]) + list(extras["gpu"]) + list(extras["mlflow"])
    imported = _imported_top_level_names()
    unused = []
    for requirement in declared:
        module = _distribution_to_module(requirement)
        if module in RUNTIME_BACKENDS:  # used through the library that loads it, which must itself be imported
            module = RUNTIME_BACKENDS[module]
        extras = re.search(r"\[([^\]]+)\]", requirement)
        wanted = [module] + [EXTRA_MODULES.get(f"{module}[{extra}]", f"{module}.{extra}")
                             for extra in (extras.group(1).split(",") if extras else [])]
        for name in wanted:
            if not any(imp == name or imp.startswith(name + ".") for imp in imported):
                unused.append(f"{requirement}: {name} is never imported by rapidseval")
    assert not unused, "\n".join(unused)


@pytest.mark.parametrize("layer", ["core", "io", "spec", "jobs"])
def test_the_layer_packages_exist(layer):
    assert (PACKAGE / layer / "__init__.py").is_file()


def test_only_the_backend_names_gpu_libraries():
    gpu = ("cudf", "cupy", "cuml", "dask_cuda", "dask_cudf", "rmm", "pynvml")
    bad = []
    for module, path in MODULES.items():
        if module in ("rapidseval.backend", "rapidseval.cluster"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                    "import_module", "importorskip", "__import__"):
                names = [arg.value for arg in node.args[:1] if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
            for name in names:
                if name.split(".")[0] in gpu:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {name}")
    assert not bad, "\n".join(bad)


def test_the_test_only_scipy_helpers_are_not_exported():
    import rapidseval.shift

    assert not [name for name in getattr(rapidseval.shift, "__all__", []) if name.startswith("_")]


if __name__ == "__main__":  # pragma: no cover - a quick look while refactoring
    sys.exit(pytest.main([__file__, "-q"]))
