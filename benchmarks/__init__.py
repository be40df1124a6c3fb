"""Benchmarks for the execution journal (see DESIGN.md section 11)."""
