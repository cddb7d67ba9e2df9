-- Further keys that lead to an instance, besides instances.create_key (saas.md §5.1, §7):
--   'v2first|<orderId>'            claims an order for its first V2 line: a second line of the
--                                  same order is created only once the order has been read;
--   'v2od|<orderId>|<productId>'   the on-demand key: every on-demand line of one order with the
--                                  same product leads to the one instance;
--   'v2|<orderId>|<orderLineId>'   an order line that was resolved to another line's instance.
-- The primary key is what makes each of them idempotent under concurrent calls.
CREATE TABLE instance_keys (
    key_text    TEXT   PRIMARY KEY,
    instance_id TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);
