-- A transfer's description is free text (any characters but controls, up to 140), and the stored
-- answer of an Idempotency-Key repeats it: store both as utf8mb4, which holds every Unicode
-- character (the server's default charset does not: an emoji was a 500). Not a _bin collation:
-- sqlx reads those as VARBINARY, not text.
ALTER TABLE transfers MODIFY description VARCHAR(140) CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL;
ALTER TABLE idempotency_keys MODIFY response_body TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NULL;
