"""Benchmarks for the inbox: ``python -m bench`` (see docs/benchmarks.md)."""
