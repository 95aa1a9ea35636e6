-- Sealing: each run's chain hash is signed with a key kept outside this
-- database (DRILL_SEALING_KEY), so that whoever can write here cannot
-- rewrite a run and its chain hash undetected.

alter table drill_runs add column seal text;        -- base64 ed25519 signature of the seal message (see drills.SealMessage)
alter table drill_runs add column seal_key_id text; -- which key signed it (drills.KeyID of its public key)
