"""roiops._dispatch: the one way from the NumPy entry points to torch, so that the import
graph has no cycle and ``roiops`` imports without torch."""
import ast
import pathlib
import subprocess
import sys

import pytest

import roiops

PACKAGE = pathlib.Path(roiops.__file__).parent
# The library's modules; the command line (roiops.cli) is an application on top of it.
LIBRARY = sorted(p for p in PACKAGE.rglob("*.py") if "cli" not in p.relative_to(PACKAGE).parts)


def _module_name(path):
    parts = ("roiops", *path.relative_to(PACKAGE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p) for p in LIBRARY}


def _imported(node, module, is_package):
    """The modules an import statement imports: ``from pkg import x`` imports the module
    ``pkg.x`` if there is one, else ``pkg`` (for a name defined there)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    package = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    base = node.module if not node.level else ".".join(p for p in (package, node.module) if p)
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]


def _graph():
    """{module: the roiops modules it imports at load}, functions' bodies excluded. A module's
    own packages are left out: Python imports them before the module, whatever it says."""
    graph = {}
    for path in LIBRARY:
        module = _module_name(path)
        tree = ast.parse(path.read_text())
        top_level = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        targets = set()
        for node in top_level:
            targets.update(t for t in _imported(node, module, path.name == "__init__.py")
                           if t in MODULES and not (module + ".").startswith(t + "."))
        graph[module] = targets
    return graph


def _cycle(graph):
    """A list of modules forming an import cycle, or None."""
    state = {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state:
                found = visit(target, path + [target])
                if found:
                    return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module, [module])
            if found:
                return found
    return None


def test_the_library_has_no_import_cycle():
    graph = _graph()
    assert "roiops.torch.api" in graph["roiops.torch"]  # the walk sees relative imports
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_numpy_modules_never_import_torch_modules():
    # roiops.nn is the torch modules' public name (it requires torch, as documented).
    graph = _graph()
    for module, targets in graph.items():
        if not module.startswith(("roiops.torch", "roiops.nn")):
            assert not {t for t in targets if t.startswith("roiops.torch")}, module


def _roiops_imports(function):
    return [n for n in ast.walk(function) if isinstance(n, ast.ImportFrom) and n.level
            or isinstance(n, (ast.Import, ast.ImportFrom)) and "roiops" in ast.unparse(n)]


def test_functions_import_no_roiops_module():
    # Deferred imports hid the cycles: only roiops._dispatch (roiops.torch, for the first
    # tensor) and roiops.torch.ops (the optional Triton kernels, for the first CUDA call)
    # import a module late, through importlib, each in one place.
    for path in LIBRARY:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert not _roiops_imports(node), f"{_module_name(path)}.{node.name}"


@pytest.mark.parametrize("module", ["roiops", "roiops.compat.torchvision",
                                    "roiops.compat.tensorflow", "roiops.compat.mindspore"])
def test_importing_does_not_import_torch(module):
    code = f"import sys, {module}; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_registered_implementation_is_found():
    from roiops import _dispatch

    _dispatch.register("test.entry", len)
    assert _dispatch.tensor_implementation("test.entry") is len
