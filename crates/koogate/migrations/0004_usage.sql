-- Metering (docs/metering.md). Quantities are scaled integers: 1 unit = 10000 (4 decimals, as
-- KooGallery requires), so SUM is exact in SQL on both databases.

-- Every accepted usage event, once per idempotency key. window_start is the window the event
-- was attributed to: its own, or, when that window was already sealed on arrival (a late
-- event), the window that was open at ingestion (late = 1).
CREATE TABLE usage_events (
    idempotency_key TEXT   PRIMARY KEY,
    instance_id     TEXT   NOT NULL,
    pkg_instance    TEXT   NOT NULL,
    quantity        BIGINT NOT NULL,
    occurred_at     BIGINT NOT NULL,
    window_start    BIGINT NOT NULL,
    late            BIGINT NOT NULL,
    received_at     BIGINT NOT NULL
);
-- No secondary index: ingestion speed comes first, and events are read only by key (windows
-- hold the totals).

-- One row per (instance, package, window): the aggregate that is pushed as one usage record.
-- metering_sn is derived from the key, so a retry of the same window carries the same serial.
-- status: open (still receiving events) -> sealed (due for push) -> accepted | rejected | expired.
CREATE TABLE usage_buckets (
    metering_sn     TEXT   PRIMARY KEY,
    instance_id     TEXT   NOT NULL,
    pkg_instance    TEXT   NOT NULL,
    window_start    BIGINT NOT NULL,
    window_end      BIGINT NOT NULL,
    quantity        BIGINT NOT NULL,
    events          BIGINT NOT NULL,
    status          TEXT   NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    error_code      TEXT,
    last_error      TEXT,
    pushed_at       BIGINT,
    settled_at      BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX usage_buckets_status ON usage_buckets (status, window_start);
CREATE INDEX usage_buckets_instance ON usage_buckets (instance_id, window_start);
CREATE INDEX usage_buckets_pkg ON usage_buckets (pkg_instance);
