"""Files and SQLite: the catalog, immutable segment files, the writer lock.

Nothing here imports numba or the kernels; the index layer reads segments through this package.
"""
