-- Charges paid from a bank account (issue 12): `method` is `card` (as before) or `account`; an account
-- charge keeps the bank's code and the account's id instead of the card's display fields (which
-- become nullable; card charges still fill them all). Its money moves at the bank (bank.commands:
-- hold → capture, refund); `refunding` is the status of a succeeded account charge whose refund the
-- bank has not confirmed yet, and `refund_reason` keeps the saga's reason until it has.
ALTER TABLE charges
    ADD COLUMN method       VARCHAR(16) NOT NULL DEFAULT 'card' AFTER status,
    ADD COLUMN account_bank CHAR(3)     NULL AFTER fingerprint,
    ADD COLUMN account_id   VARCHAR(36) NULL AFTER account_bank,
    ADD COLUMN refund_reason VARCHAR(255) NULL AFTER failure_reason,
    MODIFY brand       VARCHAR(16)       NULL,
    MODIFY last4       CHAR(4)           NULL,
    MODIFY exp_month   TINYINT UNSIGNED  NULL,
    MODIFY exp_year    SMALLINT UNSIGNED NULL,
    MODIFY fingerprint CHAR(64)          NULL;
