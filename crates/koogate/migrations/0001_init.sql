-- The whole schema, written once for SQLite and PostgreSQL alike: TEXT ids, BIGINT times in
-- Unix epoch milliseconds, JSON as TEXT, no backend-specific types.

-- Replay protection: nonces (V2/kit) and authTokens (V1) remembered for their window.
CREATE TABLE nonces (
    scope      TEXT   NOT NULL,
    nonce      TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (scope, nonce)
);
CREATE INDEX nonces_expires_at ON nonces (expires_at);

-- One row per instance. create_key makes creation idempotent by constraint:
-- 'v2|<orderId>|<orderLineId>' or 'v1|<orderId>|<productId>'.
CREATE TABLE instances (
    instance_id   TEXT   PRIMARY KEY,
    create_key    TEXT   NOT NULL UNIQUE,
    protocol      TEXT   NOT NULL,
    order_id      TEXT   NOT NULL,
    order_line_id TEXT,
    product_id    TEXT,
    sku_code      TEXT,
    charging_mode TEXT,
    quantity      TEXT,
    customer_id   TEXT,
    state         TEXT   NOT NULL,
    trial         BIGINT  NOT NULL DEFAULT 0,
    expire_at     BIGINT,
    app_info      TEXT,
    failure_code  TEXT,
    failure_msg   TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX instances_order ON instances (order_id);

-- Every state change and every applied order, in order.
CREATE TABLE instance_events (
    id          TEXT   PRIMARY KEY,
    instance_id TEXT   NOT NULL,
    kind        TEXT   NOT NULL,
    from_state  TEXT,
    to_state    TEXT   NOT NULL,
    order_id    TEXT,
    detail      TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX instance_events_instance ON instance_events (instance_id, at);

-- Renewals, upgrades and unsubscriptions are applied once per order id.
CREATE TABLE applied_orders (
    order_id    TEXT   NOT NULL,
    activity    TEXT   NOT NULL,
    instance_id TEXT   NOT NULL,
    applied_at  BIGINT NOT NULL,
    PRIMARY KEY (order_id, activity)
);

-- Orders as read from the query-order open API (or carried by a V1 request).
CREATE TABLE orders (
    order_id      TEXT   PRIMARY KEY,
    order_type    TEXT   NOT NULL,
    create_time   TEXT,
    customer_id   TEXT,
    buyer_sealed  TEXT,
    extend_params TEXT,
    fetched_at    BIGINT NOT NULL
);
CREATE TABLE order_lines (
    order_line_id TEXT   PRIMARY KEY,
    order_id      TEXT   NOT NULL,
    charging_mode TEXT   NOT NULL,
    period_type   TEXT,
    period_number BIGINT,
    expire_time   TEXT,
    extend_params TEXT
);
CREATE INDEX order_lines_order ON order_lines (order_id);
CREATE TABLE order_line_products (
    order_line_id TEXT NOT NULL,
    position      BIGINT  NOT NULL,
    product_id    TEXT NOT NULL,
    sku_code      TEXT,
    linear_value  TEXT,
    product_name  TEXT,
    PRIMARY KEY (order_line_id, position)
);

-- Persistent jobs: claimed with a lease, so a crashed worker's job is picked up again.
CREATE TABLE jobs (
    id           TEXT    PRIMARY KEY,
    kind         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    dedupe_key   TEXT    UNIQUE,
    status       TEXT    NOT NULL,
    attempts     BIGINT  NOT NULL DEFAULT 0,
    max_attempts BIGINT  NOT NULL,
    run_at       BIGINT  NOT NULL,
    locked_by    TEXT,
    locked_until BIGINT,
    last_error   TEXT,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL
);
CREATE INDEX jobs_due ON jobs (status, run_at);

-- Every inbound call, personal data redacted.
CREATE TABLE audit_log (
    id          TEXT    PRIMARY KEY,
    at          BIGINT  NOT NULL,
    family      TEXT    NOT NULL,
    activity    TEXT,
    order_id    TEXT,
    instance_id TEXT,
    test        BIGINT  NOT NULL,
    verdict     TEXT    NOT NULL,
    result_code TEXT    NOT NULL,
    result_msg  TEXT,
    latency_us  BIGINT  NOT NULL,
    request     TEXT    NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
