"""The layer contract, read from the source: no module imports a layer above its own, and no import cycles.

Layers, lowest first: base → bindings → IR → format → analysis → targets → passes → engines →
reports → applications (docs/architecture.md). Every import counts, at module level, under
TYPE_CHECKING and inside functions; the cycle check covers module-level imports (the ones
executed when a module loads).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "hwopt"

LAYERS = ("base", "bindings", "ir", "format", "analysis", "targets", "passes", "engines", "reports", "applications")
BASE = {"hwopt._version", "hwopt.errors", "hwopt.fileio", "hwopt.records", "hwopt._quiet", "hwopt.isolation",
        "hwopt.isolation_worker", "hwopt.preloads", "hwopt.shared_memory", "hwopt.background",
        "hwopt.native_calls"}
APPLICATIONS = {"hwopt", "hwopt.__main__", "hwopt.api", "hwopt.cli", "hwopt.tree", "hwopt.sweeps", "hwopt.testing", "hwopt.example"}


def layer_of(module: str) -> str:
    """The layer of a hwopt module; every module must belong to one."""
    if module in BASE:
        return "base"
    if module == "hwopt._generated":
        return "bindings"
    parts = module.split(".")
    second = parts[1] if len(parts) > 1 else ""
    if second == "_generated":
        return "bindings"
    if module == "hwopt.ir":
        return "ir"
    if second in ("format", "analysis", "targets", "passes", "engines", "reports"):
        return second
    if module in APPLICATIONS or ".".join(parts[:2]) in APPLICATIONS:
        return "applications"
    raise AssertionError(f"module {module} belongs to no layer: add it to tests/test_architecture.py")


def modules() -> dict[str, Path]:
    """Every hwopt module (the passes/ and targets/ links followed), generated bindings excluded."""
    out = {}
    for folder, dirs, files in os.walk(PACKAGE, followlinks=True):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "_generated")]
        for name in files:
            if not name.endswith(".py"):
                continue
            rel = (Path(folder) / name).relative_to(PACKAGE.parent)
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = Path(folder) / name
    return out


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, path: Path, known: set[str]) -> list[tuple[str, int, bool]]:
    """(imported hwopt module, line, at module level) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
    out = []
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path, node)
            # `from hwopt.targets import ethos_u` imports a submodule; `import X from package` the package
            targets = [sub if (sub := f"{base}.{a.name}") in known else base for a in node.names]
        for name in targets:
            if name.startswith("hwopt._generated"):
                out.append(("hwopt._generated", node.lineno, id(node) not in in_function))
            elif name == "hwopt" or name.startswith("hwopt."):
                while name not in known and "." in name:  # a name inside a module: the module
                    name = name.rsplit(".", 1)[0]
                out.append((name, node.lineno, id(node) not in in_function))
    return out


def test_every_module_has_a_layer() -> None:
    found = modules()
    assert "hwopt.targets.resolve" in found and "hwopt.passes.manager" in found  # the links are followed
    for module in found:
        layer_of(module)


def test_no_module_imports_a_layer_above_its_own() -> None:
    found = modules()
    known = set(found)
    wrong = []
    for module, path in sorted(found.items()):
        own = LAYERS.index(layer_of(module))
        for name, line, _ in imports(module, path, known):
            target_layer = layer_of(name)
            if LAYERS.index(target_layer) > own:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {layer_of(module)} module {module} imports "
                             f"{target_layer} module {name}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles() -> None:
    found = modules()
    known = set(found)
    graph = {m: sorted({n for n, _, top in imports(m, p, known) if top and n != m and n in known})
             for m, p in found.items()}
    # Tarjan's strongly connected components, iteratively
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            succ = graph[node]
            if i < len(succ):
                work.append((node, i + 1))
                nxt = succ[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    cycles.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    # A package's __init__ re-exporting its own submodules is not a cycle between modules.
    real = [c for c in cycles if not _package_reexport(c)]
    assert not real, "import cycles: " + "; ".join(" <-> ".join(c) for c in real)


def _package_reexport(component: list[str]) -> bool:
    """True when the only loops run through a package and modules inside it that import the package."""
    packages = [m for m in component if any(o.startswith(m + ".") for o in component)]
    return len(packages) == 1 and all(m == packages[0] or m.startswith(packages[0] + ".") for m in component)


LAZY_LIMIT = 20  # function-level imports of hwopt's own modules, in every layer


def _lazy_imports(node: ast.AST) -> list[int]:
    """Lines of the function-level imports of hwopt modules and of importlib.import_module calls."""
    lines = []
    for fn in ast.walk(node):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for n in ast.walk(fn):
            names = ([a.name for a in n.names] if isinstance(n, ast.Import)
                     else [n.module or ""] if isinstance(n, ast.ImportFrom) and not n.level else [])
            dynamic = (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "import_module"
                       and isinstance(n.func.value, ast.Name) and n.func.value.id == "importlib")
            if dynamic or any(x == "hwopt" or x.startswith("hwopt.") for x in names):
                lines.append(n.lineno)
    return sorted(set(lines))


def test_lazy_imports_are_few_and_each_has_a_reason() -> None:
    """In every layer, applications included, a function-level import of a hwopt module (or an
    importlib.import_module call) carries `# lazy: <reason>`, and there are at most LAZY_LIMIT.

    The CLI keeps its flags in light modules and loads a command's code through one dispatch
    (hwopt.cli.load_handler); the API loads hwopt.api through hwopt.__getattr__.
    """
    unexplained, lazy = [], []
    for path in sorted(modules().values()):
        lines = path.read_text(encoding="utf-8").splitlines()
        for lineno in _lazy_imports(ast.parse("\n".join(lines))):
            where = f"{path.relative_to(ROOT)}:{lineno}"
            lazy.append(where)
            comment = lines[lineno - 1].partition("#")[2].strip()
            if not comment.startswith("lazy:") or len(comment) <= len("lazy:") + 3:
                unexplained.append(f"{where}: {lines[lineno - 1].strip()}")
    assert not unexplained, "function-level imports without a `# lazy: <reason>`:\n" + "\n".join(unexplained)
    assert len(lazy) <= LAZY_LIMIT, f"{len(lazy)} lazy imports of hwopt modules: " + ", ".join(lazy)


# Run from the repository root (as the Makefile and the suite are), `passes` and `targets` import as
# top-level packages too: second copies of hwopt.passes and hwopt.targets, with their own enums and
# registries. Nothing may use those names, and the shipped package must not depend on `tests` or
# `tools` (the suite itself imports its helpers as `tests.*`, from the root).
SHIPPED_NEVER_IMPORTS = ("passes", "targets", "tests", "tools", "docs")
SUITE_NEVER_IMPORTS = ("passes", "targets", "docs")


def _top_level_imports(path: Path) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name.split(".")[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.append((node.lineno, node.module.split(".")[0]))
    return out


def test_repository_folders_are_never_imported_as_packages() -> None:
    wrong = []
    for folders, banned in (((PACKAGE, ROOT / "passes", ROOT / "targets"), SHIPPED_NEVER_IMPORTS),
                            ((ROOT / "tests", ROOT / "tools"), SUITE_NEVER_IMPORTS)):
        for folder in folders:
            for path in sorted(folder.rglob("*.py")):
                wrong += [f"{path.relative_to(ROOT)}:{line}: import {name}"
                          for line, name in _top_level_imports(path) if name in banned and "_generated" not in path.parts]
    assert not wrong, "\n".join(wrong)


HEAVY = ("tensorflow", "tf_keras", "ethosu", "ai_edge_litert", "matplotlib", "ray")


def _loaded_after(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True, timeout=120, cwd=ROOT)
    return out.stdout.split()


def test_help_and_import_load_no_heavy_dependency() -> None:
    """`hwopt --help` and `import hwopt` load neither Vela, LiteRT, TensorFlow, matplotlib nor Ray, and
    `--help` loads no engine (the command modules hold only flags)."""
    help_code = ("import contextlib, io\nfrom hwopt.cli import main\n"
                 "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n    main(['--help'])")
    for code in ("import hwopt", help_code):
        loaded = _loaded_after(code)
        heavy = [m for m in loaded if m.split(".")[0] in HEAVY]
        assert not heavy, f"{code!r} loads {heavy[:5]}"
        engines = [m for m in loaded if m.startswith(("hwopt.engines", "hwopt.cli.run_", "hwopt.api"))]
        assert not engines, f"{code!r} loads {engines[:5]}"
    assert "hwopt.cli" in _loaded_after(help_code)


def test_every_command_handler_loads() -> None:
    """Every handler the parser names ("hwopt.cli.run_<command>:<function>") resolves to a function."""
    import argparse

    from hwopt.cli import build_parser, load_handler

    handlers = set()
    todo = [build_parser()]
    while todo:
        parser = todo.pop()
        if parser.get_default("handler"):
            handlers.add(parser.get_default("handler"))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
    assert len(handlers) >= 12
    for handler in sorted(handlers):
        assert callable(load_handler(handler)), handler
