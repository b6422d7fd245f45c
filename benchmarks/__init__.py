"""Benchmarks of the SDK against baselines; run each module with `python -m benchmarks.NAME`.

See docs/benchmarks.md for the method and the latest results.
"""
