"""Unmapping the compiler's code pages once the kernels are loaded.

Numba links its disk-cached kernels through LLVM the first time each is called in a process,
touching about 70 MB of libllvmlite's code and read-only data; the kernels then run as plain
machine code and LLVM runs again only when another kernel (or signature) loads. Those pages
are clean and file-backed: MADV_DONTNEED takes them out of the process's resident memory,
leaves them in the page cache, and a later compile faults them back in unchanged. Linux only
(a no-op elsewhere); imports only the standard library.
"""

from __future__ import annotations

import ctypes
import mmap
import sys

#: The shared library whose pages are released.
COMPILER = "libllvmlite"

# Whether the LLVM lock callback is installed, how many times LLVM has been entered since,
# and that count when pages were last released: LLVM pages are touched only under its lock.
_state = {"hooked": False, "uses": 0, "released": 0}


def _entered() -> None:
    _state["uses"] += 1


def _left() -> None:
    pass


def clean_ranges(name: str) -> list[tuple[int, int]]:
    """Address ranges of the read-only mappings of files whose path contains ``name`` and
    hold no private (copy-on-write) pages: dropping their pages loses nothing."""
    out, cur = [], None
    with open("/proc/self/smaps") as f:
        for line in f:
            head = line.split(None, 6)
            if not head[0].endswith(":"):  # a mapping: "lo-hi perms offset dev inode path"
                path = head[5] if len(head) > 5 else ""
                ok = name in path and head[1] in ("r-xp", "r--p")
                cur = tuple(int(a, 16) for a in head[0].split("-")) if ok else None
            elif cur is not None and head[0] in ("Anonymous:", "Private_Dirty:"):
                if head[1] != "0":
                    cur = None
            elif cur is not None and head[0] == "VmFlags:":
                out.append(cur)
                cur = None
    return out


def release_compiler_pages() -> None:
    """Unmap the compiler's resident pages if LLVM has run since the last call (about 0.1 us
    when it has not; a scan of ``/proc/self/smaps``, some 25 ms, when it has).

    LLVM's own lock callback (llvmlite's ``register_lock_callback``) counts its uses; it is
    installed on the first call after numba has loaded llvmlite, which this module never
    imports itself.
    """
    if sys.platform != "linux":
        return
    if not _state["hooked"]:
        binding = sys.modules.get("llvmlite.binding")
        if binding is None:
            return  # LLVM is not loaded, so none of its pages are resident
        _state["hooked"] = True  # LLVM ran before (numba's import): release its pages now
        try:
            binding.ffi.register_lock_callback(_entered, _left)
        except AttributeError:  # an llvmlite without the hook: release once, never again
            _state["uses"] = _state["released"] = -1
    elif _state["uses"] == _state["released"]:
        return
    _state["released"] = _state["uses"]
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        for lo, hi in clean_ranges(COMPILER):
            libc.madvise(lo, hi - lo, mmap.MADV_DONTNEED)
    except (OSError, AttributeError):
        pass  # a hint: without /proc or madvise nothing changes
