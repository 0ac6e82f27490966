-- headrace schema, version 3 (PostgreSQL): facts about the database itself, one row per key.
-- deployment_id: a random UUID created with the database and kept by migrations, backups and `db copy`;
-- new Windmill job ids are derived from it, so two deployments sending to one Windmill never collide.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('deployment_id', gen_random_uuid()::text);
