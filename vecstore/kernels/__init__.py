"""Numba kernels: exact top-k (exact.py), quantizer training (quantize.py), inverted-list search
(adc.py, fastscan.py), the heaps they share (heap.py). numpy and numba only; no I/O, no classes."""
