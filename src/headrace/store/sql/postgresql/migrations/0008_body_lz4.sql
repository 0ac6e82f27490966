-- headrace schema, version 8 (PostgreSQL): event bodies compressed with LZ4 instead of pglz.
-- A Dodo body is 1–4 KB of JSON, past the 2 KB where PostgreSQL compresses a row's values: pglz took 8–9 %
-- of the server's CPU under ingest load, LZ4 2 % (bench/ingest.py --postgres). Bodies stored before keep
-- their pglz form (both are read transparently). A server built without LZ4 keeps pglz: this is an
-- optimisation, so its failure leaves the schema as it was and the migration counts as applied.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE events ALTER COLUMN body SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error OR invalid_parameter_value THEN
    RAISE NOTICE 'headrace: event bodies stay compressed with pglz (%)', SQLERRM;
END
$$;
