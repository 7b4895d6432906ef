-- An Idempotency-Key is its caller's: records are (caller, key), the caller being the bearer
-- token's subject. Keyed by the key alone, one user could claim a key first (in flight: 409) or
-- answer it (another body: 422) and so make another user's request under the same key fail.
ALTER TABLE idempotency_keys
    ADD COLUMN caller VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '' FIRST;
-- Records written before: an accepted payment's answer names its order, and the order its user,
-- so a retry of it still replays. Others (refusals, claims in flight) are left to nobody (''):
-- a retry runs again and meets the same rules (the duplicate guard answers a second payment).
UPDATE idempotency_keys k
    JOIN orders o ON o.id = CASE WHEN JSON_VALID(k.response_body) THEN JSON_UNQUOTE(JSON_EXTRACT(k.response_body, '$.order_id')) END
    SET k.caller = o.user_id
    WHERE k.state = 'done' AND k.response_status = 202;
ALTER TABLE idempotency_keys DROP PRIMARY KEY, ADD PRIMARY KEY (caller, idempotency_key);
