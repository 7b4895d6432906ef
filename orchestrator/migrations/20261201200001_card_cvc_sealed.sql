-- PCI DSS 3.2 (issue 11): no CVC once an authorization has been attempted. The CVC is sealed apart
-- from the card number (common/src/card.rs) and kept here only until the order's first charge
-- command carries it away (orders::forget_cvc, in the transaction that sends it); from then on
-- `card_sealed` holds the number alone, which retries and replays charge. Orders accepted before
-- this migration keep their unversioned `card_sealed` (number and CVC in one blob) until they end;
-- the payment processor already strips the CVC from their retries and dead letters.
ALTER TABLE orders ADD COLUMN card_cvc_sealed TEXT NULL AFTER card_sealed;
