-- The proofreading ops the server sequenced (POST …/merge, …/split): what
-- a `pr-<seq>` entry of a segmentation document's `ops` means. The editable
-- mapping applies these, never the document's copy: a client may rewrite
-- an entry of the document (the update check cannot see a rewrite), it
-- cannot rewrite this table. A task's annotation copied from a base
-- annotation gets the base's rows (collab/work/flow.py).
CREATE TABLE proofreading_ops (
    annotation_id  bigint NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    seq            bigint NOT NULL,
    op             jsonb NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (annotation_id, seq)
);
