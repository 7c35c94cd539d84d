// Package outbox relays events from the PostgreSQL outbox to RabbitMQ, serves realtime resume
// from it (resume.go), and lets operators inspect (status) and re-enqueue (replay, retry-dead) it.
//
// It knows no event type: the domain encodes each relayed type's frame and names its recipients
// (domain/relayed.go; docs/events.md), and a row goes to the followers of its author or to the
// recipients its event names, those of them online, per realtime instance (route.go). It
// publishes through Watermill's message.Publisher, one feed message per instance (publish.go).
//
// The outbox row life cycle (table outbox, migrations/0001_init.sql):
//
//   - The event's transaction inserts the row as status 'pending', position NULL, together with
//     the event, with its author and, for explicit recipients, its recipients (migration 0008). A statement trigger NOTIFYs
//     NotifyChannel at commit.
//   - One relay at a time is leader (session advisory lock). It claims pending rows in id order,
//     skipping authors whose earlier row waits for a retry (order per author), and gives each
//     claimed row without a position the next value of outbox_position_seq, recording the batch's
//     positions in one outbox_inflight row and committing before it routes and publishes. Positions
//     therefore grow in relay order, and a reader that saw position P never sees a smaller one
//     later: this is what realtime `?since=` resume relies on (it reads in-flight positions too).
//   - After the broker confirmed every message of a row, the row becomes 'relayed' with its
//     position (relayed_at set), and the batch's outbox_inflight row is deleted, in one
//     transaction. Rows are kept: resume, the realtime's gap fill and replay read them by
//     position. The leader claims the next batch only after marking this one.
//   - A publish failure increments attempts, stores last_error, sets next_attempt_at with backoff
//     and drops the position (the retry gets a fresh, higher one, so the invariant above holds;
//     clients that saw the old frame dedupe by postId+type / event id). After MaxAttempts the row
//     becomes 'dead' and no longer blocks its author.
//   - A new leader first deletes the outbox_inflight batches of its predecessor (which may have
//     published some of their rows: at-least-once, consumers dedupe); those rows are claimed
//     again with fresh positions, and the predecessor's late mark of them does nothing.
//   - Replay sets matching relayed rows back to 'pending' with keep_position = true: replayed
//     frames carry their original position (and event id), so clients dedupe them.
//   - retry-dead sets dead rows back to 'pending' with attempts = 0.
package outbox

// NotifyChannel is the channel the relay LISTENs on for new rows. The outbox trigger of
// migrations/0001_init.sql names it too (SQL cannot import a Go constant; TestNotifyChannelIsTheTriggers
// checks they agree); replay and retry-dead notify it so the leader claims at once.
const NotifyChannel = "social_outbox"
