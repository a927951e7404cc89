"""Benchmarks; each script writes its own section of bench/RESULTS.md."""
