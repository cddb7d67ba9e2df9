-- Every change of an instance bumps its version; units of work are conditional on the version
-- they were decided on (compare-and-set), so two nodes can never apply a renewal to an instance
-- that was released in between. Each history entry records the version it produced: the
-- per-instance sequence of its events.
ALTER TABLE instances ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE instance_events ADD COLUMN seq BIGINT;
