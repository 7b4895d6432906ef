-- Users, login throttling and refresh tokens of the identity service.
--
-- Usernames are the user id everywhere in Sagaway and are unique byte for byte: the column's
-- collation is binary (`alice` and `Alice` are two users). Instants are DATETIME(6) in UTC (the
-- pool's session time zone), which, unlike TIMESTAMP, does not end in 2038.

CREATE TABLE users (
    username      VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    display_name  VARCHAR(100) NOT NULL,
    -- argon2id PHC string; never logged, never answered.
    password_hash VARCHAR(255) NOT NULL,
    is_admin      BOOLEAN      NOT NULL DEFAULT FALSE,
    created_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at    DATETIME(6)  NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- One row per username with a login window open (unknown usernames included, so throttling does
-- not reveal which users exist). Purged once the window has passed.
CREATE TABLE login_failures (
    username          VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL PRIMARY KEY,
    failures          INT UNSIGNED NOT NULL,
    window_started_at DATETIME(6)  NOT NULL,
    KEY login_failures_window (window_started_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- A login's chain of refresh tokens. Revoking the family (logout, or a token used twice) makes every
-- token of it fail.
CREATE TABLE refresh_families (
    id         CHAR(36)    NOT NULL PRIMARY KEY,
    username   VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    created_at DATETIME(6) NOT NULL,
    revoked_at DATETIME(6) NULL,
    KEY refresh_families_user (username)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Only the SHA-256 of each refresh token is stored. `used_at` is set when it is exchanged for the next.
CREATE TABLE refresh_tokens (
    token_hash BINARY(32)  NOT NULL PRIMARY KEY,
    family_id  CHAR(36)    NOT NULL,
    issued_at  DATETIME(6) NOT NULL,
    expires_at DATETIME(6) NOT NULL,
    used_at    DATETIME(6) NULL,
    KEY refresh_tokens_family (family_id, expires_at),
    CONSTRAINT refresh_tokens_family_fk FOREIGN KEY (family_id) REFERENCES refresh_families (id) ON DELETE CASCADE
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
