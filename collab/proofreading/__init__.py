"""Proofreading: agglomerate graphs edited by merges and splits (docs/schema.md, "Proofreading")."""
