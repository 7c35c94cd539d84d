-- Presence (design.md §3): which users hold a socket on which realtime instance. The dispatcher
-- reads it, after a claim's positions commit, to send each event once per instance that holds a
-- recipient, routing key = the instance's id.
--
-- Both tables are UNLOGGED: presence is rewritten by every write of a connect or a disconnect and
-- is worth nothing after a crash (the sockets went with it, or the instances rebuild it: an
-- instance that finds its lease row gone registers again, writes its users back and fills every
-- open socket's gap from the outbox). Skipping the WAL keeps a reconnect storm off the disk.

-- One row per live instance; lease_until is renewed by the instance. Routing ignores an instance
-- whose lease passed, and any instance deletes such rows (their presence goes with them).
CREATE UNLOGGED TABLE realtime_instances (
    id            TEXT        PRIMARY KEY,
    lease_until   TIMESTAMPTZ NOT NULL,
    registered_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per (user, instance) while the user holds at least one socket there. The primary key
-- serves routing from the follower side (an author's followers, then their instances); the
-- instance index serves the cascade when an instance's registration ends.
CREATE UNLOGGED TABLE presence (
    user_id     UUID NOT NULL,
    instance_id TEXT NOT NULL REFERENCES realtime_instances (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, instance_id)
);
CREATE INDEX presence_instance ON presence (instance_id);
