-- Read model of dialog messages (GET /dialog/{user_id}/list), written in the transaction of their
-- dialog.message_sent event and outbox row (adapters/postgres/dialogs.go).
CREATE TABLE dialog_messages (
    id           UUID PRIMARY KEY, -- UUIDv7: id order is send order
    from_user_id UUID        NOT NULL REFERENCES users (id),
    to_user_id   UUID        NOT NULL REFERENCES users (id),
    text         TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    CHECK (from_user_id <> to_user_id)
);
-- A dialog is the unordered pair of its users: a page of it is one range of this index, whoever
-- sent each message, newest first.
CREATE INDEX dialog_messages_dialog ON dialog_messages
    (least(from_user_id, to_user_id), greatest(from_user_id, to_user_id), id DESC);
