-- Postgres restores in this version the foreign keys its migration 0008 dropped (see
-- migrations/postgres/0009_foreign_keys.sql). SQLite always kept them: nothing to do.
SELECT 1;
