-- Operators decide about drift: acknowledgements on ledger entries, a journal of
-- every decision, and the retry state of pushes Cal.com refuses.

-- An acknowledged entry stays open but is left out of the drift gauges alerts use
-- until `acknowledged_until` (or until Cal.com's value changes: that closes this
-- entry and opens a new one without an acknowledgement).
ALTER TABLE calsync_drift
    ADD COLUMN acknowledged_until DATETIME(6) NULL,
    ADD COLUMN acknowledged_note TEXT NULL,
    ADD COLUMN acknowledged_by VARCHAR(255) NULL;

-- Every human decision: adopt, acknowledge, unacknowledge, approve. An approval
-- lets one held pass of `account` through; `consumed_at` says which pass used it.
CREATE TABLE calsync_decisions (
    id          BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind        VARCHAR(16) NOT NULL,
    account     VARCHAR(255) NULL,
    service_id  BIGINT NULL,
    fields      TEXT NULL,
    note        TEXT NULL,
    decided_by  VARCHAR(255) NOT NULL,
    decided_at  DATETIME(6) NOT NULL,
    until_at    DATETIME(6) NULL,
    consumed_at DATETIME(6) NULL,
    KEY calsync_decisions_service (service_id),
    KEY calsync_decisions_account (account, kind)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Push backoff: one row per service whose last push failed. `values_key` is what
-- the failing push carried; a platform change makes a new key and starts over.
CREATE TABLE calsync_push_state (
    service_id      BIGINT NOT NULL PRIMARY KEY,
    account         VARCHAR(255) NOT NULL,
    values_key      LONGTEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at DATETIME(6) NOT NULL,
    needs_human     TINYINT(1) NOT NULL,
    last_error      TEXT NOT NULL,
    updated_at      DATETIME(6) NOT NULL,
    KEY calsync_push_state_account (account)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
