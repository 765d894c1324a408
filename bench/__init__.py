"""Benchmarks behind `make bench`: ratios and counts taken side by side in one run."""
