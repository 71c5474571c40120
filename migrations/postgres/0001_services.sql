-- The platform's services table. In production the platform owns it and this is a
-- no-op; calsync only creates it (with its company index) for embedded and test
-- setups, and never alters or drops a platform column or index.
DO $$
BEGIN
    IF to_regclass('services') IS NULL THEN
        CREATE TABLE IF NOT EXISTS services (
            id                   BIGSERIAL PRIMARY KEY,
            company_id           BIGINT NOT NULL,
            branch_id            BIGINT NULL,
            name                 VARCHAR(255) NOT NULL,
            description          TEXT NULL,
            duration_minutes     INTEGER NOT NULL,
            price                NUMERIC(10, 2) NOT NULL DEFAULT 0,
            currency             CHAR(3) NOT NULL DEFAULT 'EUR',
            is_active            BOOLEAN NOT NULL DEFAULT TRUE,
            is_online            BOOLEAN NOT NULL DEFAULT TRUE,
            composite            BOOLEAN NOT NULL DEFAULT FALSE,
            segments             JSONB NULL,
            calcom_event_type_id BIGINT NULL UNIQUE,
            sync_status          VARCHAR(16) NOT NULL DEFAULT 'never',
            last_calcom_sync     TIMESTAMP NULL,
            sync_error           TEXT NULL,
            created_at           TIMESTAMP NULL DEFAULT (now() AT TIME ZONE 'UTC'),
            updated_at           TIMESTAMP NULL DEFAULT (now() AT TIME ZONE 'UTC')
        );
        CREATE INDEX services_company_id_index ON services (company_id);
    END IF;
END
$$;
