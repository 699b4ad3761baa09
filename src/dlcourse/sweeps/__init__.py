"""Sweeps: `jobs` sets up each job of a multirun and records failures; `summary` turns a sweep
directory into summary.md / summary.csv (also `dlcourse-summary` for one still running)."""
