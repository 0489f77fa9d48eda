-- Volume data uploaded with a WEBKNOSSOS zip (POST /api/annotations/{id}/nml):
-- one upload per volume layer of the zip, immutable once written. The
-- segmentation document's `import` op names an upload; materialising the op
-- copies its bricks into the layer (materialised_bricks), so a replay of the
-- log gives the same voxels. Kept as long as the annotation: a restore may
-- bring back an op that names any of them.
CREATE TABLE volume_uploads (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    annotation_id  bigint NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    author_id      bigint REFERENCES users(id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- The layer as the zip named it, its format (zarr3, wkw) and dtype.
    name           text NOT NULL,
    format         text,
    dtype          text NOT NULL,
    -- The mags the zip carried, finest first, and how many bricks in all.
    mags           text[] NOT NULL,
    bricks         integer NOT NULL
);
CREATE INDEX volume_uploads_annotation ON volume_uploads (annotation_id);
-- One row per brick of an upload: 32³ voxels at `mag`, brick coordinates
-- counted at that mag, zstd-compressed raw bytes (little-endian, x fastest:
-- the bytes materialised_bricks holds).
CREATE TABLE volume_upload_bricks (
    upload_id  bigint NOT NULL REFERENCES volume_uploads(id) ON DELETE CASCADE,
    mag        text NOT NULL,
    bx         integer NOT NULL,
    by         integer NOT NULL,
    bz         integer NOT NULL,
    data       bytea NOT NULL,
    PRIMARY KEY (upload_id, mag, bx, by, bz)
);
