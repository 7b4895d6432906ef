-- Login throttling per (username, client address) with growing delays, instead of one failure
-- count per username (which let anyone lock any account out by guessing wrong).
--
-- `client` is the address the attempt came from (IPv4, or an IPv6 /64). Rows are purged once quiet
-- for the throttling window. The per-username table goes: its windows are short-lived anyway.
CREATE TABLE login_throttle (
    username        VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    client          VARCHAR(64)  CHARACTER SET ascii NOT NULL,
    failures        INT UNSIGNED NOT NULL,
    last_attempt_at DATETIME(6)  NOT NULL,
    next_attempt_at DATETIME(6)  NOT NULL,
    PRIMARY KEY (username, client),
    KEY login_throttle_last_attempt (last_attempt_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

DROP TABLE login_failures;

-- The audiences a login's access tokens were granted (a JSON array of strings); a refresh may
-- narrow them, never widen. NULL: a family started before audiences were recorded, which gets the
-- issuer's default audiences.
ALTER TABLE refresh_families ADD COLUMN audiences TEXT NULL;
