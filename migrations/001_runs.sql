-- Runs, their phases, checks and targets: the history of every drill.

create table drill_runs (
    id                      bigint generated always as identity primary key,
    drill                   text        not null,
    status                  text        not null check (status in ('queued', 'running', 'passed', 'failed')),
    reason                  text,
    error                   text,
    trigger                 text        not null default 'manual',
    triggered_by            text        not null default '',
    -- the drill's policy as it was when the run started: schedule,
    -- objectives, source, target and checks (no secrets)
    spec                    jsonb       not null default '{}',
    created_at              timestamptz not null default now(),
    started_at              timestamptz,
    finished_at             timestamptz,
    deadline_at             timestamptz,
    backup_id               text,
    backup_created_at       timestamptz,
    backup_created_at_source text,
    backup_format           text,
    backup_size_bytes       bigint,
    backup_database         text,
    rto_seconds             double precision,
    rpo_seconds             double precision,
    data_rpo_seconds        double precision,
    objective_rto_seconds   double precision,
    objective_rpo_seconds   double precision,
    rto_met                 boolean,
    rpo_met                 boolean
);

create index drill_runs_drill_id on drill_runs (drill, id desc);
create index drill_runs_unfinished on drill_runs (id) where finished_at is null;

create table drill_phases (
    run_id      bigint      not null references drill_runs (id) on delete cascade,
    seq         int         not null,
    name        text        not null,
    started_at  timestamptz not null,
    finished_at timestamptz,
    error       text,
    primary key (run_id, seq)
);

create table drill_checks (
    run_id           bigint           not null references drill_runs (id) on delete cascade,
    seq              int              not null,
    name             text             not null,
    type             text             not null,
    params           jsonb            not null default '{}',
    expected         text             not null default '',
    actual           text             not null default '',
    passed           boolean          not null,
    duration_seconds double precision not null default 0,
    error            text,
    primary key (run_id, seq)
);

-- A target is recorded (state 'intended') before it is created, so that a
-- crash at any point leaves a row the sweeper can act on.
create table drill_targets (
    id            bigint generated always as identity primary key,
    run_id        bigint      not null references drill_runs (id) on delete cascade,
    type          text        not null,
    instance_id   text        not null,
    details       jsonb       not null default '{}',
    state         text        not null check (state in ('intended', 'created', 'destroyed', 'kept', 'destroy_failed')),
    recorded_at   timestamptz not null default now(),
    created_at    timestamptz,
    torn_down_at  timestamptz,
    destroy_error text
);

create index drill_targets_run on drill_targets (run_id);
create index drill_targets_live on drill_targets (id) where state in ('intended', 'created', 'destroy_failed');
