-- Voxels an annotation's document materialises (a segmentation's volume
-- layers): one row per brick and version that changed it, the voxels
-- zstd-compressed (raw bytes, x fastest). The brick at version V is the row
-- with the largest version <= V; no row: the fallback (the dataset's layer).
CREATE TABLE materialised_bricks (
    annotation_id  bigint NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    doc            text NOT NULL,
    layer          text NOT NULL,
    mag            text NOT NULL,
    bx             integer NOT NULL,
    by             integer NOT NULL,
    bz             integer NOT NULL,
    version        integer NOT NULL,
    data           bytea NOT NULL,
    PRIMARY KEY (annotation_id, doc, layer, mag, bx, by, bz, version)
);
-- How far each document's log has been materialised (its bricks of every
-- version up to here are written).
CREATE TABLE materialised_versions (
    annotation_id  bigint NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    doc            text NOT NULL,
    version        integer NOT NULL,
    PRIMARY KEY (annotation_id, doc)
);
