-- Datasets shared with teams. A dataset with no rows here is open to every
-- user; one with rows is visible to admins and the members of those teams.
CREATE TABLE dataset_teams (
    dataset  text NOT NULL REFERENCES datasets(name) ON DELETE CASCADE,
    team_id  bigint NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    PRIMARY KEY (dataset, team_id)
);
CREATE INDEX dataset_teams_team ON dataset_teams (team_id);
