-- Accounts of the double-entry ledger: one per customer (`customer:<user_id>`) and the merchant.
CREATE TABLE accounts (
    id          VARCHAR(160)  NOT NULL PRIMARY KEY,
    kind        VARCHAR(16)   NOT NULL,          -- customer | merchant
    user_id     VARCHAR(128)  NULL,
    created_at  TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE = InnoDB;

INSERT INTO accounts (id, kind) VALUES ('merchant', 'merchant');

-- One journal entry per money movement; its postings sum to zero (checked on write and by
-- GET /ledger/summary). At most one capture and one refund per order, whatever is replayed.
CREATE TABLE journal_entries (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id    VARCHAR(128)  NOT NULL,
    kind        VARCHAR(16)   NOT NULL,          -- capture | refund
    currency    CHAR(3)       NOT NULL,
    description VARCHAR(255)  NOT NULL,
    created_at  TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    UNIQUE KEY uq_entry_order_kind (order_id, kind)
) ENGINE = InnoDB;

-- Signed amounts: positive = money into the account (credit to its balance), negative = out.
CREATE TABLE postings (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    entry_id    BIGINT UNSIGNED NOT NULL,
    account_id  VARCHAR(160)  NOT NULL,
    currency    CHAR(3)       NOT NULL,
    amount      DECIMAL(19,4) NOT NULL,
    KEY ix_postings_account (account_id),
    CONSTRAINT fk_postings_entry FOREIGN KEY (entry_id) REFERENCES journal_entries (id),
    CONSTRAINT fk_postings_account FOREIGN KEY (account_id) REFERENCES accounts (id)
) ENGINE = InnoDB;

-- One charge per order. Only display fields and the keyed fingerprint of the card: never PAN/CVC.
-- status: pending (retries in flight) | succeeded | declined | failed (dead-lettered; a new
-- command starts a new round) | refunded | voided (refunded before any capture).
CREATE TABLE charges (
    id              CHAR(36)      NOT NULL PRIMARY KEY,
    order_id        VARCHAR(128)  NOT NULL,
    user_id         VARCHAR(128)  NOT NULL,
    amount          DECIMAL(19,4) NOT NULL,
    currency        CHAR(3)       NOT NULL,
    status          VARCHAR(16)   NOT NULL,
    decline_code    VARCHAR(64)   NULL,
    failure_reason  VARCHAR(255)  NULL,
    brand           VARCHAR(16)   NOT NULL,
    last4           CHAR(4)       NOT NULL,
    exp_month       TINYINT UNSIGNED  NOT NULL,
    exp_year        SMALLINT UNSIGNED NOT NULL,
    fingerprint     CHAR(64)      NOT NULL,
    round           INT UNSIGNED  NOT NULL DEFAULT 1,
    created_at      TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at      TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    UNIQUE KEY uq_charges_order (order_id)
) ENGINE = InnoDB;

-- Every call to the acquirer. `round` restarts the attempt count when a dead-lettered charge is
-- replayed; the gaps between `at` values show the retry backoff.
CREATE TABLE charge_attempts (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id    VARCHAR(128)  NOT NULL,
    round       INT UNSIGNED  NOT NULL,
    attempt     INT UNSIGNED  NOT NULL,
    at          TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    outcome     VARCHAR(16)   NOT NULL,          -- approved | declined | transient
    error       VARCHAR(64)   NULL,
    UNIQUE KEY uq_attempt (order_id, round, attempt)
) ENGINE = InnoDB;

-- One refund per order (amount 0 when nothing had been captured), so a refund replays as a no-op.
CREATE TABLE refunds (
    id          CHAR(36)      NOT NULL PRIMARY KEY,
    order_id    VARCHAR(128)  NOT NULL,
    charge_id   CHAR(36)      NULL,
    amount      DECIMAL(19,4) NOT NULL,
    currency    CHAR(3)       NULL,
    reason      VARCHAR(255)  NOT NULL,
    created_at  TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    UNIQUE KEY uq_refunds_order (order_id)
) ENGINE = InnoDB;

-- Operator switches that must survive a restart and hold for every instance (acquirer_outage).
CREATE TABLE settings (
    name        VARCHAR(64)   NOT NULL PRIMARY KEY,
    value       VARCHAR(255)  NOT NULL,
    updated_at  TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE = InnoDB;
