"""Benchmarks: textsae's fast paths timed against their reference implementations."""
