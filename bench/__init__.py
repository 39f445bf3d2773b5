"""Benchmarks at scale: `python -m bench` (or `make bench`) runs the real supervisor against the fake
Telegram and fake KIE on loopback, prints a table and writes bench/results.json and bench/results.md.

Every figure is a median or a ratio, because the machines this runs on are shared and noisy; every load
loop is bounded in count and in time. See bench/__main__.py for the options (--quick, --only, --out).
"""
