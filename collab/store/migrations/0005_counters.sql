-- Counters per annotation, handed out in ranges that never overlap (a
-- segmentation layer's new segment ids: "segment-ids/<layer>"). The row
-- holds the next value to hand out.
CREATE TABLE annotation_counters (
    annotation_id  bigint NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    name           text NOT NULL,
    next_value     bigint NOT NULL,
    PRIMARY KEY (annotation_id, name)
);
