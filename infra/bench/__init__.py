"""Benchmarks printed by `make bench` (scripts/bench), one module per section."""
