-- The dispatcher routes from a copy of presence that, after each claim commits, reads only the
-- users whose rows were written since the copy's snapshot (outbox/presence.go): tx is the
-- transaction that wrote the row, and the index finds the rows at or above a snapshot's xmax and
-- those of the transactions it had in flight. Rows present when this runs get its transaction
-- id; a dispatcher starts from a full read anyway.
ALTER TABLE presence ADD COLUMN tx xid8 NOT NULL DEFAULT pg_current_xact_id();
CREATE INDEX presence_tx ON presence (tx);
