-- Runs that wait on something external (an RDS instance being created)
-- snooze their job instead of holding a worker: the run records which job
-- carries it and until when it sleeps.

alter table drill_runs add column job_id bigint;
alter table drill_runs add column waiting_until timestamptz;

create index drill_runs_job on drill_runs (job_id) where job_id is not null;
