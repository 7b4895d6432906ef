-- Idempotency-Key records of POST /accounts/{id}/operations and POST /transfers (Stripe semantics):
-- a claim (`in_flight`, owned by one request), then the answer to replay (`done`). Kept at least
-- BANK_IDEMPOTENCY_TTL_HOURS (default 24), then purged.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    idempotency_key  VARCHAR(255)  NOT NULL PRIMARY KEY,
    -- SHA-256 (hex) of the canonical request: user, route, body.
    request_hash     CHAR(64)      NOT NULL,
    state            VARCHAR(16)   NOT NULL,
    -- A fresh token per claim: only the request holding it completes or releases the claim.
    owner            CHAR(36)      NOT NULL,
    response_status  SMALLINT      NULL,
    response_body    TEXT          NULL,
    created_at       TIMESTAMP(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    KEY idempotency_keys_created (created_at)
) ENGINE = InnoDB;
