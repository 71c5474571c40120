-- The three-way reconcile: what both sides last agreed on, and why a ledger entry
-- exists.

-- Baseline: per linked service, the canonical value of each drift field that the
-- platform and Cal.com last agreed on, as JSON: {"name": "Haircut", ...}; after
-- Cal.com normalised a pushed value, {"name": {"platform": "Cut ", "calcom": "Cut"}}.
-- A field missing from `agreed` has no baseline yet. The row applies only while
-- the service is linked to `event_type_id`.
CREATE TABLE calsync_baseline (
    service_id    BIGINT NOT NULL PRIMARY KEY,
    event_type_id BIGINT NOT NULL,
    agreed        LONGTEXT NOT NULL,
    agreed_at     DATETIME(6) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Entries recorded before this migration were all Cal.com-side differences.
ALTER TABLE calsync_drift
    ADD COLUMN origin VARCHAR(16) NOT NULL DEFAULT 'calcom_edit',
    ADD COLUMN baseline_value TEXT NULL,
    ADD KEY calsync_drift_resolved (resolved_at);

-- When Cal.com confirmed (404) that a registered event type is gone; cleared when
-- a listing shows it again. A known orphan is not asked about again every pass.
ALTER TABLE calsync_event_types ADD COLUMN gone_at DATETIME(6) NULL;
