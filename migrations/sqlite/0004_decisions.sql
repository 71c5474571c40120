-- Operators decide about drift: acknowledgements on ledger entries, a journal of
-- every decision, and the retry state of pushes Cal.com refuses.

-- An acknowledged entry stays open but is left out of the drift gauges alerts use
-- until `acknowledged_until` (or until Cal.com's value changes: that closes this
-- entry and opens a new one without an acknowledgement).
ALTER TABLE calsync_drift ADD COLUMN acknowledged_until TIMESTAMP NULL;
ALTER TABLE calsync_drift ADD COLUMN acknowledged_note TEXT NULL;
ALTER TABLE calsync_drift ADD COLUMN acknowledged_by VARCHAR(255) NULL;

-- Every human decision: adopt, acknowledge, unacknowledge, approve. An approval
-- lets one held pass of `account` through; `consumed_at` says which pass used it.
CREATE TABLE calsync_decisions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        VARCHAR(16) NOT NULL,
    account     VARCHAR(255) NULL,
    service_id  BIGINT NULL,
    fields      TEXT NULL,
    note        TEXT NULL,
    decided_by  VARCHAR(255) NOT NULL,
    decided_at  TIMESTAMP NOT NULL,
    until_at    TIMESTAMP NULL,
    consumed_at TIMESTAMP NULL
);
CREATE INDEX calsync_decisions_service ON calsync_decisions (service_id);
CREATE INDEX calsync_decisions_account ON calsync_decisions (account, kind);

-- Push backoff: one row per service whose last push failed. `values_key` is what
-- the failing push carried; a platform change makes a new key and starts over.
CREATE TABLE calsync_push_state (
    service_id      BIGINT PRIMARY KEY NOT NULL,
    account         VARCHAR(255) NOT NULL,
    values_key      TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    needs_human     BOOLEAN NOT NULL,
    last_error      TEXT NOT NULL,
    updated_at      TIMESTAMP NOT NULL
);
CREATE INDEX calsync_push_state_account ON calsync_push_state (account);
