-- Repairs the books of banks whose clearing accounts collided, and makes a posting into an account
-- that does not exist impossible.
--
-- A clearing account (`clearing:<peer>:<currency>`) used to get the number of the first issuable
-- base at or after 1000 + 10·peer + currency index. When that base's check digit would be 10 the
-- number stepped onto the next currency's, whose INSERT IGNORE then did nothing: its postings were
-- written (the customer side moved) but no account row held them, so its balance never moved and
-- /admin/clearing stopped netting. Here, for every such posting's account:
--   1. the missing clearing account is opened with a number of its own (the scheme the code uses
--      now, `rules::account_number::SystemAccount::Clearing`: the first issuable base of
--      1000000 + 1000·peer + 10·currency index, +1);
--   2. every clearing account's balances are set to the sum of its postings (what they are by
--      definition; the missing ones' postings were never applied);
--   3. the foreign key postings → accounts is added. A posting into any other missing account
--      (none is known to exist) makes this step fail, and the bank does not start until it is
--      looked into (docs/banks.md, "Repairing the books").

INSERT INTO accounts (id, number, kind, currency, owner_user, created_at)
SELECT o.id, IF(o.c0 < 10, CONCAT(LPAD(o.b, 8, '0'), o.c0), CONCAT(LPAD(o.b + 1, 8, '0'), o.c1)), 'system', o.currency, 'bank', UTC_TIMESTAMP(6)
FROM (
    SELECT m.id, m.currency, m.b,
           MOD(11 - MOD(9 * CAST(SUBSTRING(LPAD(m.b, 8, '0'), 1, 1) AS UNSIGNED) + 8 * CAST(SUBSTRING(LPAD(m.b, 8, '0'), 2, 1) AS UNSIGNED) + 7 * CAST(SUBSTRING(LPAD(m.b, 8, '0'), 3, 1) AS UNSIGNED) + 6 * CAST(SUBSTRING(LPAD(m.b, 8, '0'), 4, 1) AS UNSIGNED) + 5 * CAST(SUBSTRING(LPAD(m.b, 8, '0'), 5, 1) AS UNSIGNED) + 4 * CAST(SUBSTRING(LPAD(m.b, 8, '0'), 6, 1) AS UNSIGNED) + 3 * CAST(SUBSTRING(LPAD(m.b, 8, '0'), 7, 1) AS UNSIGNED) + 2 * CAST(SUBSTRING(LPAD(m.b, 8, '0'), 8, 1) AS UNSIGNED), 11), 11) AS c0,
           MOD(11 - MOD(9 * CAST(SUBSTRING(LPAD(m.b + 1, 8, '0'), 1, 1) AS UNSIGNED) + 8 * CAST(SUBSTRING(LPAD(m.b + 1, 8, '0'), 2, 1) AS UNSIGNED) + 7 * CAST(SUBSTRING(LPAD(m.b + 1, 8, '0'), 3, 1) AS UNSIGNED) + 6 * CAST(SUBSTRING(LPAD(m.b + 1, 8, '0'), 4, 1) AS UNSIGNED) + 5 * CAST(SUBSTRING(LPAD(m.b + 1, 8, '0'), 5, 1) AS UNSIGNED) + 4 * CAST(SUBSTRING(LPAD(m.b + 1, 8, '0'), 6, 1) AS UNSIGNED) + 3 * CAST(SUBSTRING(LPAD(m.b + 1, 8, '0'), 7, 1) AS UNSIGNED) + 2 * CAST(SUBSTRING(LPAD(m.b + 1, 8, '0'), 8, 1) AS UNSIGNED), 11), 11) AS c1
    FROM (
        SELECT DISTINCT p.account_id AS id, SUBSTRING(p.account_id, 14, 3) AS currency,
               1000000 + 1000 * CAST(SUBSTRING(p.account_id, 10, 3) AS UNSIGNED) + 10 * (FIELD(SUBSTRING(p.account_id, 14, 3), 'USD', 'EUR', 'BRL', 'GBP', 'CHF', 'CAD', 'AUD', 'JPY', 'KRW') - 1) AS b
        FROM postings p
        LEFT JOIN accounts a ON a.id = p.account_id
        WHERE a.id IS NULL
          AND p.account_id REGEXP '^clearing:[0-9]{3}:[A-Z]{3}$'
          AND FIELD(SUBSTRING(p.account_id, 14, 3), 'USD', 'EUR', 'BRL', 'GBP', 'CHF', 'CAD', 'AUD', 'JPY', 'KRW') > 0
    ) m
) o;

UPDATE accounts a
LEFT JOIN (
    SELECT account_id,
           SUM(CASE WHEN bucket = 'available' THEN amount ELSE 0 END) AS available,
           SUM(CASE WHEN bucket = 'held' THEN amount ELSE 0 END) AS held
    FROM postings
    WHERE account_id LIKE 'clearing:%'
    GROUP BY account_id
) s ON s.account_id = a.id
SET a.available = COALESCE(s.available, 0), a.held = COALESCE(s.held, 0)
WHERE a.id LIKE 'clearing:%';

ALTER TABLE postings ADD CONSTRAINT postings_account_exists FOREIGN KEY (account_id) REFERENCES accounts (id);
