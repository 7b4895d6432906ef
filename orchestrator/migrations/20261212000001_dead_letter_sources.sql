-- Dead letters of every service: besides `payment_dlq` the recorder reads the bank's `bank.dlq`,
-- so each row says which dead-letter topic it came from. `compensation` names the compensation
-- step a letter carries (release_reservation, refund, bank_refund, bank_void: orchestrator/src/dlq/kind.rs),
-- NULL for any other letter; an operator may also RESOLVE a letter (status RESOLVED, the reason
-- in status_reason) once its cause is handled by hand.
ALTER TABLE dead_letters
    ADD COLUMN dlq_topic VARCHAR(255) NULL AFTER dlq_message_id,
    ADD COLUMN compensation VARCHAR(32) NULL AFTER message_type,
    ADD KEY dead_letters_compensation (compensation, status);

-- Letters recorded before: every one came from payment_dlq.
UPDATE dead_letters SET compensation = CASE
        WHEN message_type = 'release_reservation' AND original_topic LIKE '%product.commands' THEN 'release_reservation'
        WHEN message_type = 'refund' AND original_topic LIKE '%payment.commands' THEN 'refund'
        WHEN message_type = 'refunded' AND original_topic LIKE '%bank.replies' THEN 'bank_refund'
        WHEN message_type = 'voided' AND original_topic LIKE '%bank.replies' THEN 'bank_void'
    END;
