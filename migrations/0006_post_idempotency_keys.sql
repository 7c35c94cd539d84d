-- Idempotency-Key of POST /post/create (design.md §2): a retry by the same user with the same key
-- within 24 hours answers the first call's post id and creates nothing. The row is written by the
-- post's own statement, in the post's transaction: a post and its key commit together or not at all.
-- post_id has no foreign key: a post deleted since is still the answer to a retry.
CREATE TABLE post_idempotency_keys (
    user_id      UUID        NOT NULL,
    key          TEXT        NOT NULL CHECK (key ~ '^[A-Za-z0-9_-]{1,64}$'),
    -- sha256 of the request's text: the same key with another text is a 409.
    request_hash BYTEA       NOT NULL,
    post_id      UUID        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, key)
);
-- The api deletes keys older than 24 hours (they are only ever replaced after that).
CREATE INDEX post_idempotency_keys_created_at ON post_idempotency_keys (created_at);
