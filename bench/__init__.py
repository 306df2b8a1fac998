"""Benchmarks (not tests): ``python -m bench`` measures tierflow and its ceilings in one run and
writes ``bench/RESULTS.md``. Nothing here fails on timing; targets are reported, not asserted.
"""
