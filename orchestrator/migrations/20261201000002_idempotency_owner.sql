-- Who holds an in-flight Idempotency-Key claim: a fresh token per claim (and per takeover of an
-- abandoned one). Completing or releasing a claim requires the token, so a request that stalled
-- past the takeover can no longer overwrite the new owner's answer or delete its claim.
ALTER TABLE idempotency_keys ADD COLUMN owner CHAR(36) NULL AFTER state;
