"""Random 4 KiB reads from this machine's disk, bypassing the page cache (O_DIRECT): the
reads IVF-PQ re-ranking makes when full vectors live on disk (one 1,536-byte vector at 384
dimensions sits in one or two 4 KiB pages).

    python bench/disk_reads.py [--dir /tmp --size-mb 2048 --reads 4000]

Prints and writes bench/results/disk-reads.json: reads/s and median/p99 latency with 1
thread and with 16 threads in flight (the depth a batch of re-ranks can use).
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "disk-reads.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--size-mb", type=int, default=2048)
    ap.add_argument("--reads", type=int, default=4000)
    a = ap.parse_args()
    path = Path(a.dir) / "vecstore-disk-reads.bin"
    size = a.size_mb << 20
    block = os.urandom(1 << 20)
    with open(path, "wb") as fh:
        for _ in range(a.size_mb):
            fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
    out = {"file_mb": a.size_mb, "dir": a.dir}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
        pages = size // 4096
        rng = np.random.default_rng(0)

        def read(offset: int) -> float:
            buf = mmap.mmap(-1, 4096)  # page-aligned, as O_DIRECT requires
            t = time.perf_counter()
            os.preadv(fd, [buf], offset)
            dt = time.perf_counter() - t
            buf.close()
            return dt

        for threads in (1, 16):
            offsets = (rng.integers(0, pages, a.reads) * 4096).tolist()
            t = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                lat = sorted(pool.map(read, offsets))
            wall = time.perf_counter() - t
            out[f"threads_{threads}"] = {
                "reads_per_s": a.reads / wall,
                "median_us": 1e6 * statistics.median(lat),
                "p99_us": 1e6 * lat[int(0.99 * len(lat))],
            }
        os.close(fd)
    finally:
        path.unlink()
    RESULTS.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
