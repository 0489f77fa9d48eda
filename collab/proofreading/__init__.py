"""Proofreading: merges and splits of agglomerates (docs/schema.md, "Proofreading")."""
