-- Evidence: every finished run is sealed into a hash chain per drill, and
-- runs can carry management sign-offs.

alter table drill_runs add column record text;       -- canonical JSON of the run as it finished
alter table drill_runs add column prev_hash text;    -- chain_hash of the drill's previous sealed run ('' for the first)
alter table drill_runs add column chain_hash text;   -- hex SHA-256(prev chain hash bytes || record)
alter table drill_runs add column sealed_at timestamptz;

create index drill_runs_sealed on drill_runs (drill, id) where chain_hash is not null;

create table drill_signoffs (
    id        bigint generated always as identity primary key,
    run_id    bigint      not null references drill_runs (id),
    kind      text        not null check (kind in ('review', 'corrective')),
    signed_by text        not null,
    note      text        not null default '',
    signed_at timestamptz not null default now()
);

create index drill_signoffs_run on drill_signoffs (run_id);
