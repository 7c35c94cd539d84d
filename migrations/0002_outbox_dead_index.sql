-- `social outbox status` and the dead-rows gauge count dead rows on every scrape; without this
-- partial index that is a scan of the whole (ever-growing) outbox.
CREATE INDEX outbox_dead ON outbox (id) WHERE status = 'dead';
