-- Ids compare byte for byte (issue 11): `alice` and `Alice` are two users, `K1` and `k1` two
-- Idempotency-Keys. These columns had their table's default collation — the server's
-- (latin1_swedish_ci on the local MariaDB, utf8mb4_0900_ai_ci on MySQL 8) or utf8mb4_general_ci —
-- which folds case (and, on MySQL 8, accents): the duplicate guard, `GET /orders?user_id=` and the
-- Idempotency-Key records took one user's or one key's rows for another's. Values are kept as they
-- are; rows merged under the old collation (one guard row for `alice` and `Alice`) stay merged.
-- sqlx (0.8) decodes a column with a binary collation as bytes, not text: a query that reads one of
-- these columns into a String selects it as `CAST(col AS CHAR) AS col` (comparisons stay on the column).
ALTER TABLE orders MODIFY user_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE payment_guard MODIFY user_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE idempotency_keys MODIFY idempotency_key VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
