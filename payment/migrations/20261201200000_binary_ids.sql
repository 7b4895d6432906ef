-- Ids compare byte for byte (issue 11): `alice` and `Alice` are two customers with two ledger
-- accounts (`customer:alice`, `customer:Alice`). These columns had the server's default collation
-- (latin1_swedish_ci on the local MariaDB, utf8mb4_0900_ai_ci on MySQL 8), which folds case (and,
-- on MySQL 8, accents), so a second customer's capture was posted to the first one's account.
-- Values are kept as they are; postings made before this migration stay on the account they went to.
-- sqlx (0.8) decodes a column with a binary collation as bytes, not text: a query that reads one of
-- these columns into a String selects it as `CAST(col AS CHAR) AS col` (comparisons stay on the column).
-- The account id is referenced by postings: drop the foreign key, change both sides, put it back.
ALTER TABLE postings DROP FOREIGN KEY fk_postings_account;
ALTER TABLE accounts
    MODIFY id VARCHAR(160) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    MODIFY user_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL;
ALTER TABLE postings MODIFY account_id VARCHAR(160) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
ALTER TABLE postings ADD CONSTRAINT fk_postings_account FOREIGN KEY (account_id) REFERENCES accounts (id);
ALTER TABLE charges MODIFY user_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;
