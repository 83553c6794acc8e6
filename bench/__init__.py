"""Benchmarks: foxden against the browser pools people use (see README, "Benchmarks")."""
