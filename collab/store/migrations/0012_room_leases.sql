-- Several instances over one database (docs/architecture.md, "Several
-- instances"): a room (one annotation's document) is owned by one instance
-- at a time. The owner holds a lease it renews; another instance takes the
-- room once the lease has expired, and the lease's epoch grows with every
-- change of owner. Every version is written with the epoch its writer
-- holds, checked in the same transaction: an old owner that was paused and
-- woke after a takeover (its epoch passed) can never write a version.
CREATE TABLE room_leases (
    annotation_id  bigint NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    doc            text NOT NULL,
    -- the owning instance (its id, unique per process start)
    owner          text NOT NULL,
    -- the fencing token: grows by one whenever another instance takes the room
    epoch          bigint NOT NULL,
    expires_at     timestamptz NOT NULL,
    PRIMARY KEY (annotation_id, doc)
);
