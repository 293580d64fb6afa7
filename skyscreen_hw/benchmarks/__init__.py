"""Benchmarks behind `skyscreen-hw bench` and bench/: medians and ratios measured in one run."""
