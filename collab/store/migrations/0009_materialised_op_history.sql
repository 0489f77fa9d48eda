-- An undo computes the bricks an op reached again from a version before it
-- and the ops applied since. That base version must not hold an op that has
-- been deleted since (an earlier undo): so deleted ops stay, marked with the
-- version that deleted them, and an op added again (a restore) gets a row of
-- its own. `bricks` lists the bricks an op reaches at its mag (x, y, z
-- flattened) where they are far fewer than its box (a brush stroke); null:
-- every brick of the box. Ops undone before this migration left no row: an
-- undo that should move its base back before one of them cannot (their
-- voxels may come back once); annotations painted since are exact.
ALTER TABLE materialised_ops ADD COLUMN deleted_at integer;
ALTER TABLE materialised_ops ADD COLUMN bricks integer[];
ALTER TABLE materialised_ops DROP CONSTRAINT materialised_ops_pkey;
ALTER TABLE materialised_ops ADD PRIMARY KEY (annotation_id, doc, op, version);
CREATE INDEX materialised_ops_alive ON materialised_ops (annotation_id, doc, op)
    WHERE deleted_at IS NULL;
