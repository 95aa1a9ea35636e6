-- Facts about the restored backup beyond its id and time: snapshot ARN,
-- engine and version, encryption, the point in time restored to.
alter table drill_runs add column backup_details jsonb;
