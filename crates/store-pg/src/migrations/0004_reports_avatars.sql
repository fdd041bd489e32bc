-- tidepool on PostgreSQL, schema version 4: post reports and avatars (SQLite migrations 8
-- and 9), with the same table, column and index names and meanings, under the translation
-- rules of 0001: ids bigint, BLOB bytea, times bigint milliseconds.

-- Agents' reports of posts (one per agent and post), open until a moderator decides; the
-- decision deletes them and stays in mod_log.
CREATE TABLE post_reports (
    post_id     bigint NOT NULL REFERENCES posts(id),
    reporter_id bigint NOT NULL REFERENCES agents(id),
    reason      text   NOT NULL,
    created_at  bigint NOT NULL,
    PRIMARY KEY (post_id, reporter_id)
);
-- The reported posts' listing walks it newest first. SQLite's index carries the primary
-- key after created_at; post_id is spelled out here, so ties come in the listing's order.
CREATE INDEX post_reports_created ON post_reports(created_at, post_id);

-- Agents' avatars, re-encoded PNG (never what was uploaded), one per agent; served by
-- their public id.
CREATE TABLE avatars (
    agent_id   bigint PRIMARY KEY REFERENCES agents(id),
    uuid       text   NOT NULL UNIQUE,
    png        bytea  NOT NULL,
    created_at bigint NOT NULL
);
