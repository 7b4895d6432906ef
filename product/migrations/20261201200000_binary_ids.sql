-- Ids compare byte for byte (issue 11): `alice` and `Alice` are two users, `K1` and `k1` two
-- Idempotency-Keys. These columns had their table's default collation — the server's
-- (latin1_swedish_ci on the local MariaDB, utf8mb4_0900_ai_ci on MySQL 8) or utf8mb4_general_ci —
-- which folds case (and, on MySQL 8, accents). Values are kept as they are.
-- sqlx (0.8) decodes a column with a binary collation as bytes, not text: a query that reads one of
-- these columns into a String selects it as `CAST(col AS CHAR) AS col` (comparisons stay on the column).
ALTER TABLE reservations MODIFY user_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE idempotency_keys MODIFY idempotency_key VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
