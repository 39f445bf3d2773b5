-- One row per live locker (a supervisor process start), written on every lock heartbeat: how many
-- tenants it is able to serve and how many locks it holds. Fair shares count only able lockers, and a
-- process releases its excess only to a locker that has room for it.
CREATE TABLE lockers (
    identity   text PRIMARY KEY,
    able       integer NOT NULL,
    held       integer NOT NULL,
    beat_at    timestamptz NOT NULL DEFAULT now()
);
