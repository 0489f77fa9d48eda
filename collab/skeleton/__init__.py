"""The skeleton document: typed model, invariant repair, NML, queries."""
