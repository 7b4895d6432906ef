-- The audit of a DLQ operation is written item by item, in the transaction that acts on each
-- dead letter: a crash or an error part-way leaves exactly the items that committed audited, and
-- an operation over any number of dead letters fits (one row per item instead of JSON in TEXT).
-- The operation row is written first and committed; `finished_at` stays NULL if it never ended.
CREATE TABLE dlq_audit_items (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    audit_id        BIGINT UNSIGNED NOT NULL,
    dead_letter_id  BIGINT UNSIGNED NOT NULL,
    outcome         VARCHAR(32)     NOT NULL,
    detail          VARCHAR(1024)   NOT NULL,
    KEY dlq_audit_items_audit (audit_id, id),
    KEY dlq_audit_items_dead_letter (dead_letter_id, audit_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Older entries keep their JSON columns; new ones leave them NULL.
ALTER TABLE dlq_audit
    MODIFY dead_letter_ids TEXT NULL,
    MODIFY outcomes MEDIUMTEXT NULL,
    ADD COLUMN finished_at TIMESTAMP(6) NULL;
