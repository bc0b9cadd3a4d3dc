"""Adapters and helpers of bench/compare_peers.py: one module per system under test
(``*_sys.py``, a common interface in base.py), the datasets (data.py), the per-process
measurements (worker.py) and the report (report.py). Benchmark code only: never imported by
vecstore.
"""
