-- A physical backup restored with its WAL records the point its recovery
-- reached (the last transaction replayed): its RPO runs from there.
alter table drill_runs add column backup_recovered_to timestamptz;
