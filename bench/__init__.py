"""Benchmark scripts (not tests: CI does not run them). See bench/README.md."""
