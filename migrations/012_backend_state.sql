-- A target's own state between calls (an RDS instance's polls and status,
-- whether its restore was requested) is kept apart from the facts of the
-- record (details): only the backend that wrote it reads it.
alter table drill_targets add column backend_state jsonb;
