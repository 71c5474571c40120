-- The platform's services table. In production the platform owns it and this is a
-- no-op; calsync only creates it for embedded and test setups, and never alters or
-- drops a platform column.
CREATE TABLE IF NOT EXISTS services (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    company_id           BIGINT NOT NULL,
    branch_id            BIGINT NULL,
    name                 VARCHAR(255) NOT NULL,
    description          TEXT NULL,
    duration_minutes     INTEGER NOT NULL,
    price                DECIMAL(10, 2) NOT NULL DEFAULT 0,
    currency             CHAR(3) NOT NULL DEFAULT 'EUR',
    is_active            BOOLEAN NOT NULL DEFAULT 1,
    is_online            BOOLEAN NOT NULL DEFAULT 1,
    composite            BOOLEAN NOT NULL DEFAULT 0,
    segments             TEXT NULL,
    calcom_event_type_id BIGINT NULL UNIQUE,
    sync_status          VARCHAR(16) NOT NULL DEFAULT 'never',
    last_calcom_sync     TIMESTAMP NULL,
    sync_error           TEXT NULL,
    created_at           TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at           TIMESTAMP NULL DEFAULT CURRENT_TIMESTAMP
);
