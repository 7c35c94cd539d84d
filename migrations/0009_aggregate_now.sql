-- What is true now of each aggregate whose relayed events can be superseded: the relay's claim and
-- resume join it by events.aggregate_id and hand it to the domain (domain.Now), so a frame never
-- carries text its author has since replaced or deleted (design.md §4, §5) — not when resumed,
-- not when replayed, not when a backlog is relayed after an outage. A post's events have the post
-- as aggregate; a deleted post has no row here. An event type whose aggregate can change adds its
-- read model here (docs/events.md); the relay and resume stay as they are.
CREATE VIEW aggregate_now AS
    SELECT id AS aggregate_id, text FROM posts;
