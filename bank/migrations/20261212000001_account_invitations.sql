-- Co-holders join a joint account by accepting an invitation (docs/bank.md#joint-accounts): the
-- opener names them, each gets a PENDING invitation, and only on ACCEPTED is a row added to
-- `account_holders`. Until then the invitee cannot see or operate the account and is not listed
-- among its holders. DECLINED (by the invitee) and REVOKED (by a holder) are final.
CREATE TABLE account_invitations (
    account_id  VARCHAR(36)  NOT NULL,
    -- the invitee
    user_id     VARCHAR(64)  NOT NULL,
    invited_by  VARCHAR(64)  NOT NULL,
    status      VARCHAR(16)  NOT NULL,
    created_at  DATETIME(6)  NOT NULL,
    decided_at  DATETIME(6)  NULL,
    PRIMARY KEY (account_id, user_id),
    KEY account_invitations_user (user_id, status)
) ENGINE = InnoDB;

-- Joint accounts opened before invitations named their co-holders without asking them: each such
-- co-holder becomes a pending invitation (they accept to hold the account again), and the account
-- is its opener's alone until they do.
INSERT INTO account_invitations (account_id, user_id, invited_by, status, created_at)
SELECT h.account_id, h.user_id, a.owner_user, 'PENDING', a.created_at
FROM account_holders h JOIN accounts a ON a.id = h.account_id
WHERE a.kind = 'joint' AND h.user_id <> a.owner_user;

DELETE h FROM account_holders h JOIN accounts a ON a.id = h.account_id
WHERE a.kind = 'joint' AND h.user_id <> a.owner_user;
