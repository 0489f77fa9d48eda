-- An import stores its uploads before the segmentation document names them
-- (a refused zip must change nothing), so an upload whose import never
-- reached the document (the commit failed, the server died in between)
-- would stay forever, unreachable. Uploads start pending; the import's
-- version names them in its summary ({"import": {"uploads": [ids]}}); each
-- later import settles the pending uploads older than an hour, of any
-- annotation: kept (pending no more) where a version of their annotation's
-- segmentation names them, removed where none does. A failure the server
-- sees removes them at once. Uploads stored before this migration were
-- named by their version: not pending.
ALTER TABLE volume_uploads ADD COLUMN pending boolean NOT NULL DEFAULT false;
CREATE INDEX volume_uploads_pending ON volume_uploads (created_at) WHERE pending;
