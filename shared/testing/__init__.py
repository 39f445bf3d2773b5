"""Test doubles shared by the test suite, the benchmarks and the offline sandbox."""
