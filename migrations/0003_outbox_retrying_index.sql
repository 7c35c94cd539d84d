-- The relay's claim skips a row while an earlier row of its author waits for a retry. Only rows
-- the broker refused wait (next_attempt_at is moved into the future only together with
-- attempts + 1), so this partial index holds next to nothing, and the claim's per-row check is
-- one probe of it instead of a walk over the author's pending rows in outbox_pending_author,
-- including the dead versions every claim and mark leave there until vacuum.
CREATE INDEX outbox_retrying ON outbox (author_user_id, id) WHERE status = 'pending' AND attempts > 0;

-- outbox_pending_author served only that check. Dropping it saves an index entry on every
-- insert and update of a pending row (the post transaction, the claim, the mark).
DROP INDEX outbox_pending_author;
