"""Benchmarks: foxden against the browser pools people use (see bench/README.md)."""
