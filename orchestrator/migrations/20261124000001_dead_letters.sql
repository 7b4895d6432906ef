-- Dead letters read from `payment_dlq`, one row per record, for operators to list, replay, abandon
-- and purge (orchestrator/src/dlq). The payload is what the dead letter carried: already redacted
-- of card-number-like digit runs; a charge's card travels only sealed. Never a PAN.
CREATE TABLE dead_letters (
    id                   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    -- The dead letter record itself (its message id makes recording it idempotent).
    dlq_message_id       VARCHAR(128)    NOT NULL,
    dlq_partition        INT             NOT NULL,
    dlq_offset           BIGINT          NOT NULL,
    -- Where the message that was given up came from (headers `dlq.original.*`).
    original_topic       VARCHAR(255)    NULL,
    original_partition   INT             NULL,
    original_offset      BIGINT          NULL,
    original_key         VARCHAR(255)    NULL,
    original_message_id  VARCHAR(128)    NULL,
    -- From the payload's `order_id` (or the `dlq.order_id` header) when there is one.
    order_id             VARCHAR(128)    NULL,
    message_type         VARCHAR(64)     NULL,
    attempts             INT             NULL,
    error_class          VARCHAR(64)     NULL,
    error_message        TEXT            NULL,
    first_failure        TIMESTAMP(3)    NULL,
    last_failure         TIMESTAMP(3)    NULL,
    service              VARCHAR(64)     NULL,
    -- NULL once purged.
    payload              LONGTEXT        NULL,
    -- PENDING → REPLAYED | ABANDONED | PURGED (REPLAYED/ABANDONED may still be PURGED).
    status               VARCHAR(16)     NOT NULL DEFAULT 'PENDING',
    status_reason        VARCHAR(255)    NULL,
    -- The message id the replay was published with (outbox), for tracing it downstream.
    replay_message_id    CHAR(36)        NULL,
    received_at          TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at           TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    UNIQUE KEY dead_letters_message (dlq_message_id),
    KEY dead_letters_status (status, id),
    KEY dead_letters_order (order_id),
    KEY dead_letters_class (error_class),
    KEY dead_letters_topic (original_topic),
    KEY dead_letters_first_failure (first_failure),
    KEY dead_letters_last_failure (last_failure)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Every DLQ operation: who, when, what (operation + the selection it was given), and the outcome
-- for each dead letter it touched. Reads (list, show) are recorded too.
CREATE TABLE dlq_audit (
    id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    operator         VARCHAR(128)    NOT NULL,
    at               TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    operation        VARCHAR(16)     NOT NULL,
    dry_run          TINYINT         NOT NULL DEFAULT 0,
    -- The request as given (ids, filter, limit, rate) as JSON.
    request          TEXT            NOT NULL,
    -- JSON array of the dead letter ids the operation touched (for "what happened to N?").
    dead_letter_ids  TEXT            NOT NULL,
    -- JSON array of {dead_letter_id, outcome, detail}.
    outcomes         MEDIUMTEXT      NOT NULL,
    KEY dlq_audit_at (at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
