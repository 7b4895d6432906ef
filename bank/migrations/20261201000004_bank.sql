-- The bank's own tables. Money is DECIMAL(19,4); a currency's minor unit is enforced by the service.
-- Times are DATETIME(6) in UTC, written from the service's (injectable) clock.

-- Accounts. `available` and `held` are the balances the postings add up to (kept in the same
-- transaction as the postings); `ledger` = available + held. Customer accounts never go below zero
-- (checked by the service after locking the row, and by the CHECK constraints). `system` accounts
-- (one cash account per currency: money entering/leaving the bank) and `merchant` accounts may.
CREATE TABLE accounts (
    id              VARCHAR(36)    NOT NULL PRIMARY KEY,
    number          CHAR(9)        NOT NULL,
    kind            VARCHAR(16)    NOT NULL,
    currency        CHAR(3)        NOT NULL,
    -- who opened it (also a holder); masked in lookups
    owner_user      VARCHAR(64)    NOT NULL,
    -- CPF (individual) or CNPJ (business), digits only; never logged and never answered in clear
    document        VARCHAR(14)    NULL,
    available       DECIMAL(19,4)  NOT NULL DEFAULT 0,
    held            DECIMAL(19,4)  NOT NULL DEFAULT 0,
    created_at      DATETIME(6)    NOT NULL,
    UNIQUE KEY accounts_number (number),
    CONSTRAINT accounts_available_non_negative CHECK (kind IN ('system', 'merchant') OR available >= 0),
    CONSTRAINT accounts_held_non_negative CHECK (held >= 0)
) ENGINE = InnoDB;

-- Who may operate an account (one row for individual/business accounts, two or more for joint).
CREATE TABLE account_holders (
    account_id  VARCHAR(36)  NOT NULL,
    user_id     VARCHAR(64)  NOT NULL,
    PRIMARY KEY (account_id, user_id),
    KEY account_holders_user (user_id)
) ENGINE = InnoDB;

-- The per-account acceptance counter of the operation queue (apart from `accounts`, so accepting an
-- operation never waits for a balance lock).
CREATE TABLE account_sequences (
    account_id  VARCHAR(36)  NOT NULL PRIMARY KEY,
    next_seq    BIGINT       NOT NULL
) ENGINE = InnoDB;

-- Double-entry ledger: a journal entry per money movement, and its postings, which sum to zero.
CREATE TABLE journal (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    kind        VARCHAR(32)     NOT NULL,
    reference   VARCHAR(64)     NOT NULL,
    created_at  DATETIME(6)     NOT NULL,
    KEY journal_reference (reference)
) ENGINE = InnoDB;

CREATE TABLE postings (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    journal_id  BIGINT UNSIGNED NOT NULL,
    account_id  VARCHAR(36)     NOT NULL,
    bucket      VARCHAR(16)     NOT NULL,
    amount      DECIMAL(19,4)   NOT NULL,
    KEY postings_account (account_id, id)
) ENGINE = InnoDB;

-- The per-account operation queue. `seq` is the acceptance order within the account; the consumer
-- applies QUEUED operations in `seq` order.
CREATE TABLE operations (
    id          CHAR(36)       NOT NULL PRIMARY KEY,
    account_id  VARCHAR(36)    NOT NULL,
    seq         BIGINT         NOT NULL,
    kind        VARCHAR(16)    NOT NULL,
    amount      DECIMAL(19,4)  NOT NULL,
    status      VARCHAR(16)    NOT NULL,
    reason      VARCHAR(64)    NULL,
    user_id     VARCHAR(64)    NOT NULL,
    created_at  DATETIME(6)    NOT NULL,
    updated_at  DATETIME(6)    NOT NULL,
    UNIQUE KEY operations_account_seq (account_id, seq),
    KEY operations_queued (account_id, status, seq)
) ENGINE = InnoDB;

-- Transfers. `to_bank` is kept for inter-bank transfers (a later PREPARED state, 2PC).
CREATE TABLE transfers (
    id                 CHAR(36)       NOT NULL PRIMARY KEY,
    kind               VARCHAR(16)    NOT NULL,
    from_account       VARCHAR(36)    NOT NULL,
    to_bank            CHAR(3)        NOT NULL,
    to_account_number  CHAR(9)        NOT NULL,
    to_account         VARCHAR(36)    NULL,
    amount             DECIMAL(19,4)  NOT NULL,
    currency           CHAR(3)        NOT NULL,
    description        VARCHAR(140)   NULL,
    status             VARCHAR(16)    NOT NULL,
    reason             VARCHAR(64)    NULL,
    execute_at         DATETIME(6)    NULL,
    user_id            VARCHAR(64)    NOT NULL,
    created_at         DATETIME(6)    NOT NULL,
    updated_at         DATETIME(6)    NOT NULL,
    KEY transfers_due (status, execute_at),
    KEY transfers_from (from_account)
) ENGINE = InnoDB;

-- Status history of operations, transfers and payment holds (subject = their id).
CREATE TABLE status_history (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    subject_id  VARCHAR(64)     NOT NULL,
    status      VARCHAR(16)     NOT NULL,
    reason      VARCHAR(64)     NULL,
    at          DATETIME(6)     NOT NULL,
    KEY status_history_subject (subject_id, id)
) ENGINE = InnoDB;

-- Holds for paying orders from an account (bank.commands), one per payment id.
CREATE TABLE payment_holds (
    payment_id  VARCHAR(64)    NOT NULL PRIMARY KEY,
    account_id  VARCHAR(36)    NULL,
    user_id     VARCHAR(64)    NOT NULL,
    amount      DECIMAL(19,4)  NOT NULL,
    currency    CHAR(3)        NOT NULL,
    status      VARCHAR(16)    NOT NULL,
    reason      VARCHAR(64)    NULL,
    created_at  DATETIME(6)    NOT NULL,
    updated_at  DATETIME(6)    NOT NULL
) ENGINE = InnoDB;
