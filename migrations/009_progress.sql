-- What a run in progress is doing now (its latest progress line, written
-- at most every few seconds), for its page. Not part of the record.
alter table drill_runs add column progress text;
alter table drill_runs add column progress_at timestamptz;
