package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socialnet/social/domain"
)

// row is one claimed outbox row with its event, ready to publish.
type row struct {
	id        int64
	eventID   string
	author    string
	position  int64
	attempts  int
	createdAt time.Time // outbox row creation: start of the relay latency
	frame     []byte    // the websocket frame, encoded once for every follower
	// recipients are the users an AudienceRecipients event goes to (domain.Route); nil for the
	// author's followers.
	recipients []string
	// refuse is why the row cannot be relayed (a type the domain does not relay, a payload it
	// cannot decode): the row is refused like a broker nack, retried with backoff, then dead.
	refuse string
	// superseded: nothing of the event is true now (domain.ErrSuperseded): nothing is sent and
	// the row is relayed.
	superseded bool
}

// claimSQL takes the next pending rows in id order and numbers those without a position from
// outbox_position_seq, in id order, in one statement (one implicit transaction, committed
// synchronously before anything is routed or published). Only the leader claims, and it claims
// the next batch only after marking the last, so positions grow in relay order. The fresh
// positions are recorded in ONE outbox_inflight row for the batch (see migrations/0004): resume
// reads them there until the mark moves them into outbox. A row is skipped while an earlier row
// of its author waits for a retry (order per author; only refused rows, attempts > 0, ever wait:
// the partial index outbox_retrying answers it). Replayed rows keep their position and are not
// recorded in flight (outbox already has it).
//
// nextval in the outer select of an ordered subquery is evaluated in the subquery's order; the
// relay still checks that positions grow with ids (claimBatch) rather than trusting it blindly.
// numbered is referenced twice, hence materialized: each row gets one nextval. claimed carries
// every outbox column the relay needs: joining outbox again by id made the planner hash-join a
// sequential scan of the whole (ever-growing) table. The OFFSET 0 fences keep the per-row index
// lookups (events by id, earlier waiting rows of the author by outbox_retrying), whatever the
// CTE's row estimate.
const claimSQL = `
WITH claimed AS (
    SELECT o.id, o.position, o.event_id, o.author_user_id, o.attempts, o.created_at, o.recipients IS NULL AS to_followers
    FROM outbox o
    WHERE o.status = 'pending' AND o.next_attempt_at <= now()
      AND NOT EXISTS (
          SELECT 1 FROM outbox w
          WHERE w.status = 'pending' AND w.attempts > 0 AND w.author_user_id = o.author_user_id
            AND w.id < o.id AND w.next_attempt_at > now() OFFSET 0)
    ORDER BY o.id
    LIMIT $1
), numbered AS (
    SELECT s.id, s.event_id, s.author_user_id, nextval('outbox_position_seq') AS pos
    FROM (SELECT id, event_id, author_user_id FROM claimed WHERE position IS NULL ORDER BY id) s
), inflight AS (
    INSERT INTO outbox_inflight (positions, event_ids, authors)
    SELECT array_agg(pos ORDER BY id), array_agg(event_id ORDER BY id), array_agg(author_user_id ORDER BY id)
    FROM numbered
    HAVING count(*) > 0
    RETURNING batch
)
SELECT c.id, c.event_id::text, c.author_user_id::text, COALESCE(n.pos, c.position), n.pos IS NOT NULL,
       c.attempts, c.created_at, e.type, e.payload, e.created_at, COALESCE((SELECT batch FROM inflight), 0),
       cur.text, c.to_followers
FROM claimed c
CROSS JOIN LATERAL (SELECT type, payload, created_at, aggregate_id FROM events WHERE id = c.event_id OFFSET 0) e
LEFT JOIN LATERAL (SELECT text FROM aggregate_now WHERE aggregate_id = e.aggregate_id OFFSET 0) cur ON true
LEFT JOIN numbered n ON n.id = c.id
ORDER BY c.id`

// claim is what one claimBatch took.
type claim struct {
	rows []*row
	// inflight is the batch's outbox_inflight row (0 when no row got a fresh position).
	inflight int64
}

// claimBatch claims up to limit rows on the leader's connection and encodes their frames.
func claimBatch(ctx context.Context, conn *pgx.Conn, limit int) (claim, error) {
	res, err := conn.Query(ctx, claimSQL, limit)
	if err != nil {
		return claim{}, fmt.Errorf("claim outbox rows: %w", err)
	}
	defer res.Close()
	var c claim
	var lastFresh int64 // the last position numbered by this claim
	for res.Next() {
		r := &row{}
		var typ string
		var payload []byte
		var at time.Time
		var fresh bool
		var now *string
		var toFollowers bool
		if err := res.Scan(&r.id, &r.eventID, &r.author, &r.position, &fresh, &r.attempts, &r.createdAt, &typ, &payload, &at, &c.inflight, &now, &toFollowers); err != nil {
			return claim{}, fmt.Errorf("claim outbox rows: %w", err)
		}
		// The domain encodes every relayed type's frame and names its recipients. A row it
		// refuses (an event type this dispatcher does not know, e.g. written by a newer API
		// during a rolling deploy) is refused like a nack: its author's later rows wait behind
		// its retries, other authors' rows do not, and it ends dead (outbox status, retry-dead).
		//
		// The frame carries what is true now (aggregate_now): a post deleted before its row is
		// relayed — a backlog after an outage, or a replay — is superseded and sends nothing; its
		// row is marked relayed at its position like any other, so order and resume are unchanged.
		route, frame, derr := domain.DecodeRelayed(typ, payload, r.position, at, nowOf(now))
		switch {
		case errors.Is(derr, domain.ErrSuperseded):
			r.superseded = true
		case derr != nil:
			r.refuse = fmt.Sprintf("event %s: %v", r.eventID, derr)
		}
		r.frame, r.recipients = frame, route.Recipients
		if derr == nil && r.recipients == nil && !toFollowers {
			// The row names explicit recipients but its event goes to followers: the two rules
			// (domain.OutboxRoute at insert, domain.Route here) disagree. Sent as it is it would
			// reach nobody and be marked relayed; refused, it ends dead and visible instead.
			r.refuse = fmt.Sprintf("event %s: the outbox row names recipients, the event goes to followers", r.eventID)
		}
		// Positions numbered by this claim must grow with id. Replayed rows keep their old
		// positions, which need not follow id order, so they are not checked.
		if fresh {
			if r.position <= lastFresh {
				return claim{}, fmt.Errorf("claim outbox rows: positions out of id order (%d after %d)", r.position, lastFresh)
			}
			lastFresh = r.position
		}
		c.rows = append(c.rows, r)
	}
	if err := res.Err(); err != nil {
		return claim{}, fmt.Errorf("claim outbox rows: %w", err)
	}
	return c, nil
}

// nowOf is domain.Now from aggregate_now's text (NULL: no row, e.g. a deleted post).
func nowOf(text *string) domain.Now {
	if text == nil {
		return domain.Now{}
	}
	return domain.Now{Found: true, Text: *text}
}

// resetUnfinished runs when a relay becomes leader: the batches its predecessor claimed and did
// not mark (it may have published some of their rows: at-least-once) are forgotten. Their rows are
// still pending without a position and get fresh ones when claimed again, above every position
// already handed out, so the ordering promise holds. Deleting a batch also fences the
// predecessor's late mark of it (markSQL): the two statements lock the same outbox_inflight row,
// so either the mark committed first (its rows are relayed and not claimed again) or it finds its
// batch gone and marks nothing fresh. Pending non-replay rows with a position are left by
// versions before migration 0004, which numbered rows in outbox itself; they are cleared too.
func resetUnfinished(ctx context.Context, conn *pgx.Conn) (int64, error) {
	var n int64
	err := conn.QueryRow(ctx, `
		WITH gone AS (DELETE FROM outbox_inflight RETURNING cardinality(positions) AS n),
		old AS (UPDATE outbox SET position = NULL
			WHERE status = 'pending' AND NOT keep_position AND position IS NOT NULL RETURNING 1)
		SELECT coalesce((SELECT sum(n) FROM gone), 0) + (SELECT count(*) FROM old)`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("forget unfinished batches: %w", err)
	}
	return n, nil
}
