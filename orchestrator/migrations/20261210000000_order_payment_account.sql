-- Paying an order from a bank account (issue 12): an order is paid by card (as before) or from an
-- account of a known bank. `payment_type` says which; an account order keeps the bank's code and the
-- account's id, and no card columns (they become nullable; card orders still fill them all).
ALTER TABLE orders
    ADD COLUMN payment_type VARCHAR(16) NOT NULL DEFAULT 'card' AFTER reason,
    ADD COLUMN account_bank CHAR(3)     NULL AFTER card_cvc_sealed,
    ADD COLUMN account_id   VARCHAR(36) NULL AFTER account_bank,
    MODIFY card_brand       VARCHAR(16)       NULL,
    MODIFY card_last4       CHAR(4)           NULL,
    MODIFY card_exp_month   TINYINT UNSIGNED  NULL,
    MODIFY card_exp_year    SMALLINT UNSIGNED NULL,
    MODIFY card_fingerprint CHAR(64)          NULL;
