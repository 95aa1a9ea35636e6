-- Scheduled drills: heartbeats of running runs, one active run per drill,
-- and a record of overdue notices already sent.

alter table drill_runs add column heartbeat_at timestamptz;
alter table drill_runs add column worker text;

-- Never two queued or running runs of the same drill.
create unique index drill_runs_one_active on drill_runs (drill) where status in ('queued', 'running');

create index drill_runs_last_success on drill_runs (drill, finished_at desc) where status = 'passed';

create table drill_overdue_notices (
    drill           text        primary key,
    last_success_at timestamptz,
    notified_at     timestamptz not null default now()
);

-- The identity of this state database, written into every instance's
-- marks: the sweeper removes unknown instances only when they name it,
-- never another installation's.
create table drill_store (
    id         uuid        primary key default gen_random_uuid(),
    created_at timestamptz not null default now()
);
insert into drill_store default values;
