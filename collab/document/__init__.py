"""CRDT documents as data: their kinds, their JSON view, and computed changes
(restore, selective revert). Pure code over pycrdt, no I/O."""
