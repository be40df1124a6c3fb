"""Benchmarks for the execution journal (targets: docs/design.md §12)."""
