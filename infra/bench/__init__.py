"""Benchmarks run by `make bench`: each section prints a table; numbers are measured, never assumed."""
