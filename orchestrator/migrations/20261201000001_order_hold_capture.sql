-- What an order holds, typed, instead of three flags beside its status (saga/machine.rs):
--   hold_state:    UNLOCKED | HELD | RELEASING | GONE | SOLD   (the stock reservation)
--   capture_state: NONE | CAPTURED | REFUNDING | REFUNDED       (the card's money; one capture per order)
-- Existing rows are translated from the flags they had; `compensating` stays (compensation has begun).
ALTER TABLE orders
    ADD COLUMN hold_state    VARCHAR(16) NOT NULL DEFAULT 'UNLOCKED' AFTER status,
    ADD COLUMN capture_state VARCHAR(16) NOT NULL DEFAULT 'NONE' AFTER hold_state;

UPDATE orders SET
    hold_state = CASE
        WHEN awaiting_release = 1 THEN 'RELEASING'
        WHEN status = 'COMPLETED' THEN 'SOLD'
        WHEN status = 'ACCEPTED' THEN 'UNLOCKED'
        WHEN compensating = 1 OR status = 'COMPENSATED' THEN 'GONE'
        ELSE 'HELD'
    END,
    capture_state = CASE
        WHEN captured = 0 THEN 'NONE'
        WHEN awaiting_refund = 1 THEN 'REFUNDING'
        WHEN compensating = 1 OR status = 'COMPENSATED' THEN 'REFUNDED'
        ELSE 'CAPTURED'
    END;

ALTER TABLE orders
    DROP COLUMN awaiting_release,
    DROP COLUMN awaiting_refund,
    DROP COLUMN captured;
