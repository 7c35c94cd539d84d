-- Resume (?since=N, adapters/websocket/missed.go) reads the frames after N of the authors a user
-- follows. Without this index PostgreSQL scanned outbox from N on and filtered by author: 100 ms
-- per 500-frame page at 500,000 rows for a client back after a long absence (every page of it),
-- growing with the table. With it, each followed author is one index range: the cost follows the
-- frames the user missed, not the size of the outbox. Rows get their entry when they get a position
-- (the mark, which updates every index anyway), not when the post transaction inserts them.
CREATE INDEX outbox_author_position ON outbox (author_user_id, position) WHERE position IS NOT NULL;
