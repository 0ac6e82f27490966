-- headrace schema, version 3 (SQLite): facts about the database itself, one row per key.
-- deployment_id: a random UUID created with the database and kept by migrations, backups and `db copy`;
-- new Windmill job ids are derived from it, so two deployments sending to one Windmill never collide.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
INSERT INTO meta (key, value)
SELECT 'deployment_id',
       lower(substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-4' || substr(h, 14, 3) || '-'
             || substr('89ab', 1 + abs(random()) % 4, 1) || substr(h, 18, 3) || '-' || substr(h, 21, 12))
FROM (SELECT hex(randomblob(16)) AS h);
