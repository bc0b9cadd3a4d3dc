"""Top-k heaps shared by the kernels: a heap is a pair ``(D, I)`` of float32 scores and int64
labels, a min-heap on D (its worst score at 0), filled with ``(-inf, -1)`` when empty.

numpy + numba only; jitted helpers for other kernels, no wrappers. Numba's disk cache keys a
kernel on its own file: every module calling these records this file's hash (see JIT_SOURCES
in exact.py), so editing this file forces an edit, and a recompile, of each caller.
"""

# D and I (scores, labels) are the faiss names the house style asks for.
# ruff: noqa: E741

from numba import njit


@njit(cache=True, nogil=True)
def sift_down(D, I, i, n):
    """Restore the min-heap property of D[:n]/I[:n] below position i."""
    s = D[i]
    lab = I[i]
    while True:
        c = 2 * i + 1
        if c >= n:
            break
        r = c + 1
        if r < n and D[r] < D[c]:
            c = r
        if D[c] >= s:
            break
        D[i] = D[c]
        I[i] = I[c]
        i = c
    D[i] = s
    I[i] = lab


@njit(cache=True, nogil=True)
def replace_top(D, I, s, label):
    """Replace the heap minimum D[0] by (s, label); the caller checked s > D[0]."""
    D[0] = s
    I[0] = label
    sift_down(D, I, 0, D.shape[0])


@njit(cache=True, nogil=True)
def push(D, I, s, label):
    """Offer (s, label) to the heap D/I (k,): the guard makes the common no-push case nearly
    free."""
    if s > D[0]:
        replace_top(D, I, s, label)


@njit(cache=True, nogil=True)
def merge(PD, PI, D, I):
    """Offer every filled entry (label >= 0) of the heaps PD/PI (nh, k) to the heap D/I (k,)."""
    for c in range(PD.shape[0]):
        for j in range(PD.shape[1]):
            if PI[c, j] >= 0 and PD[c, j] > D[0]:
                replace_top(D, I, PD[c, j], PI[c, j])


@njit(cache=True, nogil=True)
def sort(D, I):
    """Sort the pair D/I (k,) in place, best (highest score) first, whether or not it is a
    well-formed heap: heapify, then repeatedly move the minimum to the end."""
    k = D.shape[0]
    for j in range(k // 2 - 1, -1, -1):
        sift_down(D, I, j, k)
    for end in range(k - 1, 0, -1):
        s = D[0]
        lab = I[0]
        D[0] = D[end]
        I[0] = I[end]
        D[end] = s
        I[end] = lab
        sift_down(D, I, 0, end)
