-- Inter-bank transfers (two-phase commit between banks; docs/banks.md).

-- The coordinator's durable log: one row per transfer this bank started. `state` is the serialized
-- `rules::interbank::Coordinator` (legs, votes, acknowledgements, reason); `status` repeats its
-- status for the recovery loop's index. The row is committed before any prepare leaves, and every
-- decision is committed before any commit/abort leaves.
CREATE TABLE interbank_coordinator (
    tx_id            CHAR(36)     NOT NULL PRIMARY KEY,
    status           VARCHAR(16)  NOT NULL,
    state            MEDIUMTEXT   NOT NULL,
    -- PREPARING past this instant aborts (prepare_timeout)
    prepare_deadline DATETIME(6)  NOT NULL,
    -- when the recovery loop next resends what is awaited
    next_attempt_at  DATETIME(6)  NOT NULL,
    attempts         INT          NOT NULL DEFAULT 0,
    created_at       DATETIME(6)  NOT NULL,
    updated_at       DATETIME(6)  NOT NULL,
    KEY interbank_coordinator_pending (status, next_attempt_at)
) ENGINE = InnoDB;

-- One row per leg of a transfer held at this bank (`rules::interbank::Participant`). A PREPARED
-- debit's amount sits in the account's `held`; a PREPARED credit is only this row (invisible and
-- unspendable until commit).
CREATE TABLE interbank_participants (
    tx_id            CHAR(36)     NOT NULL,
    leg_index        INT          NOT NULL,
    -- the bank that coordinates the transfer (asked for the decision when in doubt)
    coordinator      CHAR(3)      NOT NULL,
    status           VARCHAR(16)  NOT NULL,
    request          TEXT         NULL,
    reason           VARCHAR(64)  NULL,
    account_id       VARCHAR(36)  NULL,
    next_inquiry_at  DATETIME(6)  NOT NULL,
    created_at       DATETIME(6)  NOT NULL,
    updated_at       DATETIME(6)  NOT NULL,
    PRIMARY KEY (tx_id, leg_index),
    KEY interbank_participants_in_doubt (status, next_inquiry_at)
) ENGINE = InnoDB;

-- Nonces of signed inter-bank requests, kept while their timestamp could still be accepted (a
-- replay inside the window hits the primary key).
CREATE TABLE interbank_nonces (
    bank        CHAR(3)      NOT NULL,
    nonce       VARCHAR(128) NOT NULL,
    expires_at  BIGINT       NOT NULL,
    PRIMARY KEY (bank, nonce),
    KEY interbank_nonces_expiry (expires_at)
) ENGINE = InnoDB;

-- Inter-bank transfers at the bank that started them: `sources` lists every debit
-- ([{bank, account_id, amount}], JSON) — one for a one-to-one transfer, several for many-to-one;
-- `from_account` is the first source's account (it may be at another bank).
ALTER TABLE transfers
    ADD COLUMN interbank TINYINT(1) NOT NULL DEFAULT 0,
    ADD COLUMN sources TEXT NULL;
