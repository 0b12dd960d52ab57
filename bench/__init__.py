"""Benchmarks: each compares two ways of doing the same work, side by side in one run, and prints
their ratio. `python -m bench` (or `make bench`) runs them all; BENCHMARKS.md holds the figures.
Speed is measured here, never asserted by timed tests."""
