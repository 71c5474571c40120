-- calsync's own tables. Ledger entries keep their service id even after the service
-- is deleted (history), so there is no foreign key to the platform table.

-- Drift ledger. `open_key` = '<service_id>:<field>' while the entry is open and NULL
-- once resolved: a plain UNIQUE index then allows one open entry per (service,
-- field) and any number of resolved ones, on every backend.
CREATE TABLE calsync_drift (
    id                   BIGSERIAL PRIMARY KEY,
    service_id           BIGINT NOT NULL,
    calcom_event_type_id BIGINT NOT NULL,
    account              VARCHAR(255) NOT NULL,
    field                VARCHAR(32) NOT NULL,
    platform_value       TEXT NOT NULL,
    calcom_value         TEXT NOT NULL,
    first_seen_at        TIMESTAMP NOT NULL,
    last_seen_at         TIMESTAMP NOT NULL,
    times_seen           BIGINT NOT NULL DEFAULT 1,
    resolved_at          TIMESTAMP NULL,
    resolution           VARCHAR(32) NULL,
    open_key             VARCHAR(64) NULL
);
CREATE UNIQUE INDEX calsync_drift_open_key ON calsync_drift (open_key);
CREATE INDEX calsync_drift_account ON calsync_drift (account, service_id);
CREATE INDEX calsync_drift_service ON calsync_drift (service_id);

-- Event type registry: which account listed an event type last, and its team.
CREATE TABLE calsync_event_types (
    event_type_id BIGINT PRIMARY KEY,
    account       VARCHAR(255) NOT NULL,
    team_id       BIGINT NULL,
    last_seen_at  TIMESTAMP NOT NULL
);
CREATE INDEX calsync_event_types_account ON calsync_event_types (account);

-- Run journal: one line per account pass.
CREATE TABLE calsync_runs (
    id          BIGSERIAL PRIMARY KEY,
    account     VARCHAR(255) NOT NULL,
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP NOT NULL,
    result      VARCHAR(16) NOT NULL,
    summary     JSONB NOT NULL,
    error       TEXT NULL
);
CREATE INDEX calsync_runs_account ON calsync_runs (account, id);
