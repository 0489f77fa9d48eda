-- The ops a materialiser applied, with the version that added each and the
-- bricks it may change (its reach, at its mag): what an undo (an op deleted)
-- needs to compute the bricks again from the ops that remain, in order,
-- without reading the log. A row goes when its op is deleted; restoring the
-- op adds it again at the restoring version.
CREATE TABLE materialised_ops (
    annotation_id  bigint NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    doc            text NOT NULL,
    op             text NOT NULL,
    version        integer NOT NULL,
    -- the op id's counter: the order of ops within a version
    seq            bigint NOT NULL,
    layer          text NOT NULL,
    mag            text NOT NULL,
    -- bricks b0 <= b <= b1 at that mag
    b0x integer NOT NULL, b0y integer NOT NULL, b0z integer NOT NULL,
    b1x integer NOT NULL, b1y integer NOT NULL, b1z integer NOT NULL,
    PRIMARY KEY (annotation_id, doc, op)
);
CREATE INDEX materialised_ops_order ON materialised_ops (annotation_id, doc, version, seq);
