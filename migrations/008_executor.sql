-- Who and what carried out a run: drill's version with its VCS revision,
-- and the host it ran on.
alter table drill_runs add column drill_version text;
alter table drill_runs add column host text;
-- How the backup was chosen: the rule and the newest candidates.
alter table drill_runs add column backup_selection jsonb;
-- What the restore programs printed (capped, secrets redacted), and its
-- digest, which the sealed record carries.
alter table drill_runs add column restore_log text;
alter table drill_runs add column restore_log_sha256 text;
