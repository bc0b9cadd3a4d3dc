"""The architecture, checked: imports flow one way without cycles, modules keep to their own
private names, import is cheap, stored data never runs code, and kernels that call another
file's jitted helpers are recompiled when it changes."""

from __future__ import annotations

import ast
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vecstore"

# Which top-level modules of vecstore each layer may import (besides itself).
ALLOWED = {
    "kernels": set(),
    "storage": {"errors"},
    "index": {"kernels", "storage", "errors"},
    "encoders": {"errors"},
    # adapters for other frameworks: vecstore's public objects only, as a user would
    "integrations": {"errors", "inputs", "database", "collection", "results", "encoders"},
}
THIRD_PARTY = {
    # llvmlite is Numba's own code generator (a dependency of numba): fast-scan's intrinsic
    # emits LLVM IR with it
    "kernels": {"numpy", "numba", "llvmlite"},
    # zlib_ng: the same CRC-32 as zlib, 8x faster (storage/segments.py)
    "storage": {"numpy", "sqlite_utils", "msgpack", "zlib_ng"},
}

# The top floor: which of its modules each one must not import at run time (the rules their
# docstrings state). The engine knows nothing of the objects built on it; the reader and the
# writer know nothing of the public objects, and the reader nothing of the writer; fusion is
# pure ranking; ingest, export and audit reach the store through the objects they are given.
TOP_FLOOR_MUST_NOT_IMPORT = {
    "store.py": {"database", "collection", "reader", "writes", "embedding", "portable", "ingest"},
    "reader.py": {"database", "collection", "writes", "embedding"},
    "writes.py": {"database", "collection"},
    "embedding.py": {"database", "collection", "reader", "writes"},
    "hybrid.py": {"database", "collection", "reader", "writes", "store", "storage"},
    "config.py": {"database", "collection", "reader", "writes", "store"},
    "ingest.py": {"database", "cli", "commands", "store", "writes"},
    "portable.py": {"cli", "commands"},
    "audit.py": {"database", "collection", "cli", "kernels"},
    "chunking.py": {"inputs", "database", "collection", "storage", "index", "kernels"},
}

MAX_FUNCTION_LINES = 100
LONG_FUNCTIONS = {
    # the command line's table of subcommands and options: declarative, one call per option
    "vecstore/cli.py:build_parser",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(path: Path) -> tuple[str, ...]:
    rel = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return rel[:-1]


def _absolute(path: Path, node: ast.ImportFrom) -> tuple[str, ...]:
    """The module an ImportFrom names, as absolute dotted parts."""
    if not node.level:
        return tuple(node.module.split("."))
    package = _package_of(path)
    base = package[: len(package) - node.level + 1]
    return base + tuple(node.module.split(".")) if node.module else base


def _imports(path: Path) -> set[tuple[str, ...]]:
    """Imported module paths, resolved to absolute dotted parts."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {tuple(a.name.split(".")) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = _absolute(path, node)
            if node.level and node.module is None:
                out |= {mod + (a.name,) for a in node.names}
            else:
                out.add(mod)
    return out


def test_layers_import_one_way():
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    for layer, allowed in ALLOWED.items():
        for path in (PACKAGE / layer).rglob("*.py"):
            for mod in _imports(path):
                if mod[0] == "vecstore":
                    assert mod[1] == layer or mod[1] in allowed, (
                        f"{path.name} imports {'.'.join(mod)}"
                    )
                elif layer in THIRD_PARTY:
                    assert mod[0] in stdlib or mod[0] in THIRD_PARTY[layer], (
                        f"{path.name} imports {mod[0]}"
                    )


def test_encoders_layer():
    # Encoders stand alone (errors aside), and the protocol does not know its implementations:
    # the factory (factory.py) imports them, lazily.
    concrete = {
        "callable",
        "clip",
        "cohere",
        "http",
        "sentence_transformers",
        "transformers",
        "transport",
        "word_vectors",
    }
    for path in (PACKAGE / "encoders").glob("*.py"):
        for mod in _imports(path):
            if mod[0] == "vecstore":
                assert mod[1] in ("encoders", "errors"), f"{path.name} imports {'.'.join(mod)}"
    base = {
        m[2]
        for m in _imports(PACKAGE / "encoders" / "base.py")
        if m[:2] == ("vecstore", "encoders")
    }
    assert not base & concrete, f"encoders/base.py imports {base & concrete}"


def test_no_code_execution_from_data():
    pattern = re.compile(r"import pickle|pickle\.load|allow_pickle=True|\beval\(|\bexec\(|marshal")
    for path in PACKAGE.rglob("*.py"):
        assert not pattern.search(path.read_text()), path


def test_functions_stay_short():
    # Modules are split by concept, whatever their length; a function is kept to one screen.
    long = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                where = f"{path.relative_to(PACKAGE.parent).as_posix()}:{node.name}"
                if node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES:
                    long[where] = node.end_lineno - node.lineno + 1
    assert set(long) <= LONG_FUNCTIONS, {k: v for k, v in long.items() if k not in LONG_FUNCTIONS}
    # an exception that got short is taken off the list
    assert LONG_FUNCTIONS <= set(long), LONG_FUNCTIONS - set(long)


# -- private names ----------------------------------------------------------------------------


def _own_private_names(tree: ast.Module) -> set[str]:
    """The underscore names a module defines: functions, classes, assigned names and
    attributes, arguments, class-level annotations."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        if isinstance(node, ast.ClassDef):
            names |= {
                b.target.id
                for b in node.body
                if isinstance(b, ast.AnnAssign) and isinstance(b.target, ast.Name)
            }
    return {n for n in names if n.startswith("_")}


def _foreign_private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    own = _own_private_names(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name = node.attr
            if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if name not in own:
                out.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom):
            out += [
                f"{node.lineno}: from {node.module or '.'} import {a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
    return out


def test_no_private_access_across_modules():
    # A module uses another module's (or the standard library's) underscore names only through
    # their public API: `x._name` only where this module defines `_name`, no `from m import _name`.
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        uses = _foreign_private_uses(path)
        if uses:
            found[rel] = uses
    assert not found, found


def test_top_floor_modules_keep_to_their_side():
    graph = _import_graph()
    for name, forbidden in TOP_FLOOR_MUST_NOT_IMPORT.items():
        imported = {m.split(".")[1] for m in graph[f"vecstore.{name[:-3]}"] if m != "vecstore"}
        assert not imported & forbidden, f"{name} imports {sorted(imported & forbidden)}"


# -- import cycles ----------------------------------------------------------------------------


def _runtime_imports(body: list[ast.stmt]):
    """The import statements a module runs when it is imported: at module level, including
    inside if/try blocks, but not under ``if TYPE_CHECKING:`` nor inside functions or classes."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            test = ast.unparse(node.test)
            if test not in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                yield from _runtime_imports(node.body)
            yield from _runtime_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                yield from _runtime_imports(block)


def _import_graph() -> dict[str, set[str]]:
    """vecstore module -> the vecstore modules importing it runs (the package __init__s a
    dotted import passes through included, except the importer's own ancestors, which are
    already running)."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in paths.items():
        targets = set()
        for node in _runtime_imports(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            else:
                mod = ".".join(_absolute(path, node))
                mods = [
                    f"{mod}.{a.name}" if f"{mod}.{a.name}" in paths else mod for a in node.names
                ]
            for mod in mods:
                parts = mod.split(".")
                for i in range(1, len(parts) + 1):
                    target = ".".join(parts[:i])
                    if target in paths and (
                        i == len(parts) or not f"{name}.".startswith(f"{target}.")
                    ):
                        targets.add(target)
        graph[name] = targets - {name}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_runtime_import_cycle():
    # A cycle makes import order matter (a partly initialised module) and layers meaningless.
    # Imports inside functions (lazy) and under TYPE_CHECKING do not count.
    cycle = _find_cycle(_import_graph())
    assert cycle is None, " -> ".join(cycle)


def test_the_cycle_finder_reports_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


# -- numba's cache across files ---------------------------------------------------------------


def _source_hash(path: Path) -> str:
    """A short hash of a kernels module's source without its own JIT_SOURCES record (so a
    record changes only when code does, never in a cascade)."""
    lines = path.read_text().splitlines(keepends=True)
    for node in ast.parse("".join(lines)).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "JIT_SOURCES" for t in node.targets
        ):
            del lines[node.lineno - 1 : node.end_lineno]
            break
    return hashlib.sha256("".join(lines).encode()).hexdigest()[:12]


def test_kernels_record_the_sources_they_inline():
    # Numba's on-disk cache keys a kernel on its own file: a kernel calling a jitted helper of
    # another file keeps the old helper after that file changes. So each kernels module records
    # the hash of every kernels module it imports, directly or through another one; a change
    # there fails this test until the record is updated, and that edit recompiles its kernels.
    kernels = PACKAGE / "kernels"
    direct = {}
    for path in kernels.glob("*.py"):
        direct[path.stem] = {
            m[2] for m in _imports(path) if m[:2] == ("vecstore", "kernels") and len(m) > 2
        }
    wrong = []
    for name, deps in sorted(direct.items()):
        closure, todo = set(), list(deps)
        while todo:
            dep = todo.pop()
            if dep not in closure:
                closure.add(dep)
                todo += direct[dep]
        want = {dep: _source_hash(kernels / f"{dep}.py") for dep in sorted(closure)}
        tree = ast.parse((kernels / f"{name}.py").read_text())
        have = next(
            (
                ast.literal_eval(node.value)
                for node in tree.body
                if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "JIT_SOURCES" for t in node.targets)
            ),
            {},
        )
        if have != want:
            wrong.append(f"kernels/{name}.py: JIT_SOURCES = {json.dumps(want)}")
    assert not wrong, "recompile the callers: set\n" + "\n".join(wrong)


def test_import_is_cheap_and_lazy():
    code = (
        "import sys, time; t = time.perf_counter(); import vecstore; "
        "print(time.perf_counter() - t); "
        "print(sorted(m for m in ('numba', 'torch', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[1] == "[]"
