"""Benchmarks of daskperiment against the floor (plain dask) and its peers.

Run ``python -m benchmarks`` (see benchmarks/README.md).
"""
