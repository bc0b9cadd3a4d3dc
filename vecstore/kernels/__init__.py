"""Numba kernels: exact top-k search. Imports numpy and numba only; no I/O, no classes."""
