-- Explicit recipients of an outbox row, for event types whose recipients are known when the
-- event is written (domain.AudienceRecipients: a dialog message's two users). NULL means the
-- domain's other rule, the followers of author_user_id as they are when the row is relayed or
-- resumed: every post row. Written by the event's transaction from domain.OutboxRoute, the same
-- rule the relay applies to the event's payload, so the two always agree.
--
-- ADD COLUMN without a default only changes the catalog: no rewrite of the (ever-growing) table.
ALTER TABLE outbox ADD COLUMN recipients UUID[]
    CHECK (recipients IS NULL OR cardinality(recipients) BETWEEN 1 AND 1000);

-- Resume (outbox/resume.go) finds a user's explicit rows by these two partial indexes; post rows
-- (recipients NULL) enter neither, so the relay's claim and mark of them pay nothing for them.
-- Rows with a position: relayed, or re-enqueued by a replay.
CREATE INDEX outbox_recipients_positioned ON outbox USING gin (recipients)
    WHERE recipients IS NOT NULL AND position IS NOT NULL;
-- Pending rows: those in flight are named by outbox_inflight by event id only.
CREATE INDEX outbox_recipients_pending ON outbox USING gin (recipients)
    WHERE recipients IS NOT NULL AND status = 'pending';
