"""Benchmarks: ``python -m benchmarks`` (see BENCHMARKS.md)."""
