"""Proofreading: agglomerate graphs edited by merges and splits."""
