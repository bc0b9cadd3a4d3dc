"""The architecture, checked: imports flow one way, import is cheap, stored data never runs code."""

from __future__ import annotations

import ast
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
}
THIRD_PARTY = {
    # llvmlite is Numba's own code generator (a dependency of numba): fast-scan's intrinsic
    # emits LLVM IR with it
    "kernels": {"numpy", "numba", "llvmlite"},
    "storage": {"numpy", "sqlite_utils", "msgpack"},
}


def _imports(path: Path) -> set[tuple[str, ...]]:
    """Imported module paths, resolved to absolute dotted parts."""
    rel = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = rel[:-1] if rel[-1] != "__init__" else rel[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {tuple(a.name.split(".")) for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = base + tuple(node.module.split(".")) if node.module else base
                if node.module is None:
                    out |= {mod + (a.name,) for a in node.names}
                else:
                    out.add(mod)
            else:
                out.add(tuple(node.module.split(".")))
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


def test_no_code_execution_from_data():
    pattern = re.compile(r"import pickle|pickle\.load|allow_pickle=True|\beval\(|\bexec\(|marshal")
    for path in PACKAGE.rglob("*.py"):
        assert not pattern.search(path.read_text()), path


def test_modules_stay_small():
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text().splitlines()) <= 800, path


def test_import_is_cheap_and_lazy():
    code = (
        "import sys, time; t = time.perf_counter(); import vecstore; "
        "print(time.perf_counter() - t); "
        "print(sorted(m for m in ('numba', 'torch', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[1] == "[]"
