-- Events for the merchant's application (docs/integration.md): a transactional outbox. Each row
-- is written in the transaction of the change it describes; deliveries fan it out to endpoints.
CREATE TABLE webhook_events (
    id          TEXT   PRIMARY KEY,
    event_type  TEXT   NOT NULL,
    instance_id TEXT,
    payload     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX webhook_events_instance ON webhook_events (instance_id, created_at);

-- Where events go. Endpoints from the config file are synced at start (source 'config');
-- others are added at runtime (CLI, REST API). secret_sealed: the whsec_ secret, sealed with the
-- data key. event_types: comma-separated list, or '*' for every type.
CREATE TABLE webhook_endpoints (
    id            TEXT   PRIMARY KEY,
    url           TEXT   NOT NULL,
    secret_sealed TEXT   NOT NULL,
    event_types   TEXT   NOT NULL,
    source        TEXT   NOT NULL,
    enabled       BIGINT NOT NULL DEFAULT 1,
    created_at    BIGINT NOT NULL
);

-- One row per (event, endpoint): the delivery state, claimed with a lease like jobs.
-- seq orders the events of one instance (created_at, then id: UUID v7, time-ordered).
CREATE TABLE webhook_deliveries (
    id              TEXT   PRIMARY KEY,
    event_id        TEXT   NOT NULL,
    endpoint_id     TEXT   NOT NULL,
    instance_id     TEXT,
    status          TEXT   NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_by       TEXT,
    locked_until    BIGINT,
    last_status     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_order ON webhook_deliveries (endpoint_id, instance_id, status, created_at);

-- Every attempt of a delivery: the delivery log.
CREATE TABLE webhook_attempts (
    id          TEXT   PRIMARY KEY,
    delivery_id TEXT   NOT NULL,
    attempt     BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms  BIGINT NOT NULL,
    response    TEXT,
    error       TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, attempt);
