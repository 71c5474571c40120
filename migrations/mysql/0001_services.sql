-- The platform's services table. In production the platform owns it and this is a
-- no-op; calsync only creates it for embedded and test setups, and never alters or
-- drops a platform column. utf8mb4 so emoji and RTL titles round-trip.
CREATE TABLE IF NOT EXISTS services (
    id                   BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    company_id           BIGINT NOT NULL,
    branch_id            BIGINT NULL,
    name                 VARCHAR(255) NOT NULL,
    description          TEXT NULL,
    duration_minutes     INT NOT NULL,
    price                DECIMAL(10, 2) NOT NULL DEFAULT 0,
    currency             CHAR(3) NOT NULL DEFAULT 'EUR',
    is_active            TINYINT(1) NOT NULL DEFAULT 1,
    is_online            TINYINT(1) NOT NULL DEFAULT 1,
    composite            TINYINT(1) NOT NULL DEFAULT 0,
    segments             JSON NULL,
    calcom_event_type_id BIGINT NULL,
    sync_status          VARCHAR(16) NOT NULL DEFAULT 'never',
    last_calcom_sync     DATETIME(6) NULL,
    sync_error           TEXT NULL,
    created_at           DATETIME(6) NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at           DATETIME(6) NULL DEFAULT CURRENT_TIMESTAMP(6),
    UNIQUE KEY services_calcom_event_type_id_unique (calcom_event_type_id),
    KEY services_company_id_index (company_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
