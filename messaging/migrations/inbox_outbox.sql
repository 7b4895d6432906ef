-- Inbox: the id of every message whose effect was applied, written in the same transaction as the
-- effect, so a redelivered message is recognised and skipped.
CREATE TABLE inbox (
    message_id  VARCHAR(128)  NOT NULL PRIMARY KEY,
    topic       VARCHAR(255)  NOT NULL,
    received_at TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE = InnoDB;

-- Outbox: messages to publish, written in the transaction that decided to send them. The relay
-- publishes them in id order with the idempotent producer, then deletes them.
CREATE TABLE outbox (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    message_id  CHAR(36)        NOT NULL,
    topic       VARCHAR(255)    NOT NULL,
    msg_key     VARCHAR(255)    NOT NULL,
    payload     LONGTEXT        NOT NULL,
    headers     TEXT            NULL,
    created_at  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE = InnoDB;
