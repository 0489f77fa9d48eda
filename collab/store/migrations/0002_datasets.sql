-- Registered datasets. The metadata is what the layout said at registration
-- (refreshed when the dataset is opened again); the files stay where they are.
CREATE TABLE datasets (
    name        text PRIMARY KEY,
    url         text NOT NULL,
    layout      text NOT NULL,
    metadata    jsonb NOT NULL,
    created_by  bigint REFERENCES users(id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
