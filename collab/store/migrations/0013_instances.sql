-- Several instances over one database (docs/architecture.md, "Several
-- instances"), replacing 0012's per-room leases (never used by a room): an
-- annotation is owned by one instance at a time, and the lease covers
-- everything single-writer about it (its documents' rooms, its
-- materialiser, its proofreading sequencing). The owner renews its lease;
-- another instance takes it once it has expired, or at once when the owner
-- restarted (same url, new incarnation); the epoch grows with every change
-- of owner. Every version is written under the writer's epoch, checked in
-- the same transaction: an owner paused past its lease can never write.
DROP TABLE room_leases;
CREATE TABLE annotation_leases (
    annotation_id  bigint PRIMARY KEY REFERENCES annotations(id) ON DELETE CASCADE,
    -- the owning process: its url and a token of this start ("url#incarnation")
    owner          text NOT NULL,
    -- where other instances reach the owner (REST writes are passed on there)
    url            text NOT NULL,
    -- the fencing token: grows by one whenever another process takes it
    epoch          bigint NOT NULL,
    expires_at     timestamptz NOT NULL,
    -- another instance serves clients of the annotation until then: the
    -- owner announces its versions (NOTIFY) only while someone listens
    watched_until  timestamptz NOT NULL DEFAULT '-infinity'
);

-- Updates that clients of a non-owning instance sent, on their way to the
-- owner: it applies them as versions and deletes them in the transaction
-- that commits those versions. Durable from the insert: an owner that dies
-- leaves them to the next.
CREATE TABLE room_inbox (
    id             bigserial PRIMARY KEY,
    annotation_id  bigint NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    doc            text NOT NULL,
    -- the forwarding process (its owner string): who is told the version
    origin         text NOT NULL,
    author_id      bigint,
    summary        jsonb NOT NULL,
    data           bytea NOT NULL
);
CREATE INDEX room_inbox_annotation ON room_inbox (annotation_id, id);
