-- Event store, read models and the transactional outbox.
-- Applied in one transaction by `social migrate`.

-- events is append-only: every state change is one row. (aggregate_id, aggregate_version) is
-- unique so two writers of the same aggregate conflict instead of silently overwriting.
CREATE TABLE events (
    global_position   BIGSERIAL PRIMARY KEY,
    id                UUID        NOT NULL UNIQUE,
    aggregate_id      UUID        NOT NULL,
    aggregate_version INTEGER     NOT NULL CHECK (aggregate_version > 0),
    type              TEXT        NOT NULL,
    payload           JSONB       NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (aggregate_id, aggregate_version)
);

CREATE TABLE users (
    id            UUID PRIMARY KEY,
    first_name    TEXT    NOT NULL,
    second_name   TEXT    NOT NULL,
    birthdate     DATE    NOT NULL,
    biography     TEXT    NOT NULL,
    city          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    version       INTEGER NOT NULL
);
-- /user/search is a prefix match on both names.
CREATE INDEX users_names_prefix ON users (first_name text_pattern_ops, second_name text_pattern_ops);

-- A row (user_id, friend_id) means user_id follows friend_id: friend_id's posts reach user_id.
CREATE TABLE friendships (
    user_id    UUID        NOT NULL REFERENCES users (id),
    friend_id  UUID        NOT NULL REFERENCES users (id),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, friend_id),
    CHECK (user_id <> friend_id)
);
-- The dispatcher pages through an author's followers in user_id order.
CREATE INDEX friendships_followers ON friendships (friend_id, user_id);

CREATE TABLE posts (
    id             UUID PRIMARY KEY,
    author_user_id UUID        NOT NULL REFERENCES users (id),
    text           TEXT        NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    version        INTEGER     NOT NULL
);
-- Feed: newest posts of a set of authors. UUIDv7 ids sort by creation time.
CREATE INDEX posts_author_id ON posts (author_user_id, id DESC);

-- One row per post event, written in the same transaction as the event. The dispatcher relays rows
-- in id order per author and marks them relayed only after the broker confirmed every message.
-- position is assigned by the (single, advisory-lock elected) relay when it claims the row, so
-- positions grow in relay order; the rows are kept after relay so realtime resume and replay can
-- read events by position.
CREATE SEQUENCE outbox_position_seq;

CREATE TABLE outbox (
    id              BIGSERIAL PRIMARY KEY,
    event_id        UUID        NOT NULL UNIQUE REFERENCES events (id),
    author_user_id  UUID        NOT NULL,
    status          TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'relayed', 'dead')),
    position        BIGINT UNIQUE,
    -- replayed rows keep the position they were first relayed with (clients dedupe on it).
    keep_position   BOOLEAN     NOT NULL DEFAULT false,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    last_error      TEXT,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    relayed_at      TIMESTAMPTZ
);
CREATE INDEX outbox_pending ON outbox (id) WHERE status = 'pending';
CREATE INDEX outbox_pending_author ON outbox (author_user_id, id) WHERE status = 'pending';
CREATE INDEX outbox_relayed_at ON outbox (relayed_at) WHERE status = 'relayed';

-- Wake the dispatcher as soon as a post transaction commits (NOTIFY is delivered at commit and
-- folded to one per transaction). The dispatcher also polls, so a lost notification only delays.
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('social_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
