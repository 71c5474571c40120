-- "Last verified" once per account and pass instead of a write per service: a
-- steady pass leaves unchanged rows of `services` alone, and the platform reads
-- the per-service view below (or keeps its old query with
-- `sync.touch_last_calcom_sync = true`).

-- One row per account: when its last pass listed Cal.com and applied its write.
CREATE TABLE calsync_accounts (
    account          VARCHAR(255) PRIMARY KEY NOT NULL,
    last_verified_at TIMESTAMP NOT NULL
);

-- Per service: its account (from the event type registry), its status, when it was
-- last verified (the later of its account's last pass and its own last metadata
-- write; a service whose event type is gone keeps its own last write), and the
-- fields of its open drift entries (comma-separated, in field order).
CREATE VIEW calsync_service_status AS
SELECT
    s.id AS service_id,
    s.calcom_event_type_id AS calcom_event_type_id,
    r.account AS account,
    s.sync_status AS sync_status,
    CASE
        WHEN a.last_verified_at IS NULL OR r.gone_at IS NOT NULL THEN s.last_calcom_sync
        WHEN s.last_calcom_sync IS NOT NULL AND s.last_calcom_sync > a.last_verified_at
            THEN s.last_calcom_sync
        ELSE a.last_verified_at
    END AS last_verified_at,
    (SELECT group_concat(o.field, ',')
       FROM (SELECT d.field FROM calsync_drift d
              WHERE d.service_id = s.id AND d.resolved_at IS NULL
              ORDER BY d.field) o) AS open_drift_fields
FROM services s
LEFT JOIN calsync_event_types r ON r.event_type_id = s.calcom_event_type_id
LEFT JOIN calsync_accounts a ON a.account = r.account;
