-- An Idempotency-Key is its caller's: records are (caller, key), the caller being the bearer
-- token's subject. Keyed by the key alone, one user could claim a key first (in flight: 409) or
-- answer it (another body: 422) and so make another user's POST /reserve under the same key fail.
ALTER TABLE idempotency_keys
    ADD COLUMN caller VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL DEFAULT '' FIRST;
-- Records written before: a hold's answer names its reservation, and the reservation its user, so
-- a retry of it still replays. Others (refusals, claims in flight) are left to nobody (''): a
-- retry runs again.
UPDATE idempotency_keys k
    JOIN reservations r ON r.id = CASE WHEN JSON_VALID(k.response_body) THEN JSON_UNQUOTE(JSON_EXTRACT(k.response_body, '$.id')) END
    SET k.caller = r.user_id
    WHERE k.state = 'done' AND k.response_status = 201;
ALTER TABLE idempotency_keys DROP PRIMARY KEY, ADD PRIMARY KEY (caller, idempotency_key);
