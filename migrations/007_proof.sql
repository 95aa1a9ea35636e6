-- Proof that the restored rows are production's rows: the digest of the
-- backup as it was read, per-table findings of a check (fingerprint,
-- amcheck, drift), and the inventory of the restored database.
alter table drill_runs add column backup_sha256 text;
alter table drill_runs add column tables jsonb;   -- [{name, rows, rows_exact, bytes}]
alter table drill_checks add column details jsonb; -- [{name, status, rows, expected_rows, checksum, expected_checksum, problem}]
