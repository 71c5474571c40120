-- calsync's own tables. Ledger entries keep their service id even after the service
-- is deleted (history), so there is no foreign key to the platform table.

-- Drift ledger. `open_key` = '<service_id>:<field>' while the entry is open and NULL
-- once resolved: a plain UNIQUE index then allows one open entry per (service,
-- field) and any number of resolved ones, on every backend.
CREATE TABLE calsync_drift (
    id                   BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    service_id           BIGINT NOT NULL,
    calcom_event_type_id BIGINT NOT NULL,
    account              VARCHAR(255) NOT NULL,
    field                VARCHAR(32) NOT NULL,
    platform_value       TEXT NOT NULL,
    calcom_value         TEXT NOT NULL,
    first_seen_at        DATETIME(6) NOT NULL,
    last_seen_at         DATETIME(6) NOT NULL,
    times_seen           BIGINT NOT NULL DEFAULT 1,
    resolved_at          DATETIME(6) NULL,
    resolution           VARCHAR(32) NULL,
    open_key             VARCHAR(64) NULL,
    UNIQUE KEY calsync_drift_open_key (open_key),
    KEY calsync_drift_account (account, service_id),
    KEY calsync_drift_service (service_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Event type registry: which account listed an event type last, and its team.
CREATE TABLE calsync_event_types (
    event_type_id BIGINT NOT NULL PRIMARY KEY,
    account       VARCHAR(255) NOT NULL,
    team_id       BIGINT NULL,
    last_seen_at  DATETIME(6) NOT NULL,
    KEY calsync_event_types_account (account)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Run journal: one line per account pass.
CREATE TABLE calsync_runs (
    id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    account     VARCHAR(255) NOT NULL,
    started_at  DATETIME(6) NOT NULL,
    finished_at DATETIME(6) NOT NULL,
    result      VARCHAR(16) NOT NULL,
    summary     LONGTEXT NOT NULL,
    error       TEXT NULL,
    KEY calsync_runs_account (account, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
