-- Orders and their saga state. Card data: only brand, last4, expiry and a keyed fingerprint; the
-- PAN/CVC are kept ONLY sealed (AES-GCM, key from config) until the charge is settled, then erased.
CREATE TABLE orders (
    id                CHAR(36)        NOT NULL PRIMARY KEY,
    user_id           VARCHAR(64)     NOT NULL,
    reservation_id    CHAR(36)        NOT NULL,
    product_id        BIGINT UNSIGNED NOT NULL,
    quantity          INT             NOT NULL,
    amount            DECIMAL(19,4)   NOT NULL,
    currency          CHAR(3)         NOT NULL DEFAULT 'USD',
    status            VARCHAR(32)     NOT NULL,
    reason            VARCHAR(255)    NULL,
    card_brand        VARCHAR(16)     NOT NULL,
    card_last4        CHAR(4)         NOT NULL,
    card_exp_month    TINYINT UNSIGNED NOT NULL,
    card_exp_year     SMALLINT UNSIGNED NOT NULL,
    card_fingerprint  CHAR(64)        NOT NULL,
    card_sealed       TEXT            NULL,
    -- Compensation bookkeeping: COMPENSATED is reached when nothing is awaited any more.
    compensating      TINYINT         NOT NULL DEFAULT 0,
    awaiting_release  TINYINT         NOT NULL DEFAULT 0,
    awaiting_refund   TINYINT         NOT NULL DEFAULT 0,
    captured          TINYINT         NOT NULL DEFAULT 0,
    created_at        TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at        TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    KEY orders_user (user_id, created_at),
    KEY orders_reservation (reservation_id),
    KEY orders_status (status)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Every status an order passed through, in order.
CREATE TABLE order_history (
    id        BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id  CHAR(36)        NOT NULL,
    status    VARCHAR(32)     NOT NULL,
    reason    VARCHAR(255)    NULL,
    at        TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY order_history_order (order_id, id)
) ENGINE = InnoDB;

-- The two-minute duplicate rule: one row per (user, product) holding the last accepted order.
-- Accepting an order upserts this row in the order's transaction; the row lock serialises racing
-- requests, so of N identical concurrent payments exactly one is accepted.
CREATE TABLE payment_guard (
    user_id      VARCHAR(64)     NOT NULL,
    product_id   BIGINT UNSIGNED NOT NULL,
    order_id     CHAR(36)        NOT NULL,
    accepted_at  TIMESTAMP(6)    NOT NULL,
    PRIMARY KEY (user_id, product_id)
) ENGINE = InnoDB;

-- Idempotency-Key records (Stripe semantics), kept at least 24 h.
CREATE TABLE idempotency_keys (
    idempotency_key  VARCHAR(255)  NOT NULL PRIMARY KEY,
    request_hash     CHAR(64)      NOT NULL,
    state            VARCHAR(16)   NOT NULL,
    response_status  SMALLINT      NULL,
    response_body    TEXT          NULL,
    created_at       TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY idempotency_keys_created (created_at)
) ENGINE = InnoDB;
