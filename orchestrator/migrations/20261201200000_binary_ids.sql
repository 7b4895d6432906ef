-- Ids compare byte for byte (issue 11): `alice` and `Alice` are two users, `K1` and `k1` two
-- Idempotency-Keys. These columns had their table's default collation — the server's
-- (latin1_swedish_ci on the local MariaDB, utf8mb4_0900_ai_ci on MySQL 8) or utf8mb4_general_ci —
-- which folds case (and, on MySQL 8, accents): the duplicate guard, `GET /orders?user_id=` and the
-- Idempotency-Key records took one user's or one key's rows for another's. Values are kept as they
-- are; rows merged under the old collation (one guard row for `alice` and `Alice`) stay merged.
ALTER TABLE orders MODIFY user_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE payment_guard MODIFY user_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE idempotency_keys MODIFY idempotency_key VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
-- Message ids: the inbox must not take one message for another that differs only in case.
ALTER TABLE inbox MODIFY message_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
-- The Kafka key of a dead letter is the user id; the operator of a DLQ operation is a user too.
ALTER TABLE dead_letters MODIFY original_key VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL;
ALTER TABLE dlq_audit MODIFY operator VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
