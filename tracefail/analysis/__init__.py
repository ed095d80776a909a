"""Failure statistics, slices, audits, heuristic labels and the HTML report (polars over the store)."""
