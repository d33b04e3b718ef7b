"""Benchmarks of the site's own concurrency, run by `make bench` (see docs/benchmarks.md)."""
