-- The catalogue and its stock. Prices are exact (DECIMAL(19,4)); stock can never go negative.
CREATE TABLE products (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name        VARCHAR(200)    NOT NULL,
    description TEXT            NOT NULL,
    category    VARCHAR(100)    NOT NULL DEFAULT 'general',
    price       DECIMAL(19,4)   NOT NULL,
    stock       INT             NOT NULL DEFAULT 0,
    -- Set for rows created by `POST /` (the demo catalogue) so seeding twice is a no-op.
    seed_key    VARCHAR(64)     NULL,
    created_at  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    UNIQUE KEY products_seed_key (seed_key),
    CONSTRAINT products_stock_non_negative CHECK (stock >= 0),
    CONSTRAINT products_price_non_negative CHECK (price >= 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- A hold on stock. Created HELD by POST /reserve; the saga confirms or releases it; the expiry
-- job moves unpaid holds to EXPIRED. Each move out of HELD returns (or keeps) stock exactly once.
CREATE TABLE reservations (
    id          CHAR(36)        NOT NULL PRIMARY KEY,
    product_id  BIGINT UNSIGNED NOT NULL,
    user_id     VARCHAR(64)     NOT NULL,
    quantity    INT             NOT NULL,
    unit_price  DECIMAL(19,4)   NOT NULL,
    total_price DECIMAL(19,4)   NOT NULL,
    status      VARCHAR(16)     NOT NULL DEFAULT 'HELD',
    -- The order that locked this reservation for payment (set by the saga's lock step).
    order_id    CHAR(36)        NULL,
    expires_at  TIMESTAMP(6)    NOT NULL,
    created_at  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
    updated_at  TIMESTAMP(6)    NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),
    KEY reservations_expiry (status, expires_at),
    KEY reservations_product (product_id),
    CONSTRAINT reservations_quantity_positive CHECK (quantity > 0)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
