-- Core schema: identity, annotations, the versioned operation log, snapshots.
-- Teams, projects and tasks join these tables in later migrations.

CREATE TABLE users (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    email       text,
    roles       text[] NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    disabled_at timestamptz
);
CREATE UNIQUE INDEX users_email ON users (lower(email)) WHERE email IS NOT NULL;

-- Bearer tokens. Only a SHA-256 of the token is stored; the token itself has
-- 256 bits of entropy, so a slow KDF adds nothing. A token either acts as its
-- user everywhere (annotation_id NULL) or is a sharing link for one annotation.
CREATE TABLE tokens (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hash          bytea NOT NULL UNIQUE,
    user_id       bigint REFERENCES users(id) ON DELETE CASCADE,
    annotation_id bigint,
    access        text CHECK (access IN ('read', 'write')),
    label         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    revoked_at    timestamptz,
    CHECK ((annotation_id IS NULL) = (access IS NULL))
);

CREATE TABLE annotations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    dataset     text,
    owner_id    bigint NOT NULL REFERENCES users(id),
    created_at  timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE tokens ADD FOREIGN KEY (annotation_id) REFERENCES annotations(id) ON DELETE CASCADE;

CREATE TABLE annotation_grants (
    annotation_id bigint NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    user_id       bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role          text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    granted_by    bigint REFERENCES users(id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (annotation_id, user_id)
);
CREATE INDEX annotation_grants_user ON annotation_grants (user_id);

-- The operation log: one row per accepted update, numbered 1, 2, 3, ... per
-- (annotation, doc). Rows are never updated or deleted.
CREATE TABLE doc_updates (
    annotation_id bigint NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    doc           text NOT NULL,
    version       integer NOT NULL,
    author_id     bigint,
    created_at    timestamptz NOT NULL,
    summary       jsonb NOT NULL,
    data          bytea NOT NULL,
    PRIMARY KEY (annotation_id, doc, version)
);

-- Merged state of a document as of a version; loading a room reads the newest
-- snapshot and the updates after it.
CREATE TABLE doc_snapshots (
    annotation_id bigint NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    doc           text NOT NULL,
    version       integer NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    data          bytea NOT NULL,
    PRIMARY KEY (annotation_id, doc, version)
);

-- Server-wide values (the generated admin token's id, ...).
CREATE TABLE server_settings (
    key   text PRIMARY KEY,
    value jsonb NOT NULL
);
