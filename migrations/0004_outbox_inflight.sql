-- Positions the relay handed out and published but has not marked yet, one row per claimed batch.
--
-- A frame may reach the broker before its outbox row is marked relayed, and a realtime instance
-- that binds a user's key just after it resumes that user from the database (?since=): the
-- positions of rows in flight must therefore be readable before the mark, or that frame is lost
-- for the resuming client. They used to be written into each outbox row by the claim: one more
-- update of every row (a new version and an entry in each of its indexes), the relay's largest
-- database cost. One insert per batch carries the same facts; the mark deletes it in the
-- transaction that writes the positions into outbox, and a new leader deletes whatever its
-- predecessor left (those rows are claimed again with fresh positions).
CREATE TABLE outbox_inflight (
    batch      BIGSERIAL   PRIMARY KEY,
    positions  BIGINT[]    NOT NULL,
    event_ids  UUID[]      NOT NULL,
    authors    UUID[]      NOT NULL,
    claimed_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
