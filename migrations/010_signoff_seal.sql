-- A sign-off is sealed like a run: the sealing key signs it together with
-- its run's id and chain hash, so one written into the state database by
-- hand does not pass an evidence check.
alter table drill_signoffs add column seal text;        -- base64 signature of drills.SignoffMessage
alter table drill_signoffs add column seal_key_id text;
