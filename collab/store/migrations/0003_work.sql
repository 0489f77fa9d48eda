-- People and work: teams, experiences, projects, task types, tasks and their
-- instances, the audit log and review comments.

CREATE TABLE teams (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE team_members (
    team_id  bigint NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    user_id  bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_user ON team_members (user_id);

-- Named skill levels per user ("tracing": 3).
CREATE TABLE experiences (
    user_id  bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    domain   text NOT NULL,
    level    integer NOT NULL CHECK (level >= 0),
    PRIMARY KEY (user_id, domain)
);

CREATE TABLE projects (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              text NOT NULL,
    team_id           bigint NOT NULL REFERENCES teams(id),
    priority          integer NOT NULL DEFAULT 0,
    paused            boolean NOT NULL DEFAULT false,
    expected_minutes  integer,
    created_by        bigint REFERENCES users(id) ON DELETE SET NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE task_types (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    modes        text[] NOT NULL,
    settings     jsonb NOT NULL DEFAULT '{}',
    created_by   bigint REFERENCES users(id) ON DELETE SET NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasks (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id         bigint NOT NULL REFERENCES projects(id),
    task_type_id       bigint NOT NULL REFERENCES task_types(id),
    dataset            text REFERENCES datasets(name),
    position           bigint[] NOT NULL CHECK (cardinality(position) = 3),
    rotation           double precision[] NOT NULL DEFAULT '{0,0,0}',
    bounding_box       jsonb,
    base_annotation_id bigint REFERENCES annotations(id) ON DELETE SET NULL,
    experience_domain  text,
    experience_min     integer NOT NULL DEFAULT 0,
    instances          integer NOT NULL CHECK (instances >= 1),
    created_by         bigint REFERENCES users(id) ON DELETE SET NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_project ON tasks (project_id, id);

-- One row per wanted instance. team_id, priority, paused and the experience
-- requirement are copied from the task and project so that choosing the next
-- open instance is one ordered walk of the partial index below per team of
-- the caller, not a join and sort.
CREATE TABLE task_instances (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id            bigint NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    project_id         bigint NOT NULL REFERENCES projects(id),
    team_id            bigint NOT NULL REFERENCES teams(id),
    priority           integer NOT NULL,
    paused             boolean NOT NULL,
    experience_domain  text,
    experience_min     integer NOT NULL DEFAULT 0,
    state              text NOT NULL DEFAULT 'open'
        CHECK (state IN ('open', 'in_progress', 'finished', 'accepted', 'rejected', 'cancelled')),
    annotator_id       bigint REFERENCES users(id) ON DELETE SET NULL,
    annotation_id      bigint REFERENCES annotations(id) ON DELETE SET NULL,
    assigned_at        timestamptz,
    finished_at        timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_instances_next ON task_instances (team_id, priority DESC, task_id, id)
    WHERE state = 'open' AND NOT paused;
CREATE INDEX task_instances_task ON task_instances (task_id);
CREATE INDEX task_instances_annotator ON task_instances (annotator_id, task_id);
CREATE UNIQUE INDEX task_instances_annotation ON task_instances (annotation_id)
    WHERE annotation_id IS NOT NULL;
CREATE INDEX task_instances_project_state ON task_instances (project_id, state);

-- Who ever held an instance of a task (take, assign, reassign): nobody gets
-- the same task twice, even after a reset or reassignment.
CREATE TABLE task_holders (
    task_id  bigint NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    user_id  bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, task_id)
);

-- Every state change of a task instance (and other managed objects): who,
-- when, what, why. Append-only.
CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor_id    bigint REFERENCES users(id) ON DELETE SET NULL,
    entity      text NOT NULL,
    entity_id   bigint NOT NULL,
    action      text NOT NULL,
    from_state  text,
    to_state    text,
    reason      text,
    details     jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_entity ON audit_log (entity, entity_id, id);

CREATE TABLE review_comments (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    annotation_id  bigint NOT NULL REFERENCES annotations(id) ON DELETE CASCADE,
    author_id      bigint REFERENCES users(id) ON DELETE SET NULL,
    text           text NOT NULL,
    position       bigint[],
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX review_comments_annotation ON review_comments (annotation_id, id);

-- Time tracking reads the operation log by author and time.
CREATE INDEX doc_updates_author_time ON doc_updates (author_id, created_at)
    WHERE author_id IS NOT NULL;
