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

// outcome of one row after publishing.
type outcome uint8

const (
	// relayed: the broker confirmed every message of the row.
	relayed outcome = iota
	// refused: the broker nacked a message of the row; counts as an attempt.
	refused
	// released: not (fully) published for a reason that is not the row's fault (broker
	// unavailable, an earlier row of the author failed); no attempt counted.
	released
)

type result struct {
	row     *row
	outcome outcome
	err     string
	retryIn time.Duration
	// confirmedAt is when the broker confirmed the row's last message.
	confirmedAt time.Time
}

// markSQL applies the outcomes of one batch in one statement and deletes its outbox_inflight row
// ($7; 0 when the batch had no fresh positions): a relayed row's position moves into outbox in the
// same transaction, so resume sees it in exactly one of the two places. It runs on the leader's
// connection, in a transaction of its own; the inflight row fences it, should a leader's mark
// arrive after its session was taken over. A leader cut off mid-batch finds its batch
// deleted by its successor (resetUnfinished) and marks none of its fresh rows, which the successor
// claims again with new positions; the DELETE waits for a concurrent one, so the two never both
// win. A replay row keeps its position across leaders (o.position = u.pos), and a late mark of it
// by an old leader only records what the broker did confirm. The o.id = ANY($1) gives the planner
// an index condition (it hash-joined a sequential scan of the whole outbox otherwise). Rows that
// are not relayed get no position unless they are replays (keep_position): their next publish gets
// a new, higher one, so no reader sees a position go backwards.
const markSQL = `
WITH batch AS (DELETE FROM outbox_inflight WHERE batch = $7 RETURNING batch)
UPDATE outbox o SET
    status = CASE WHEN u.outcome = 'relayed' THEN 'relayed'
                  WHEN u.outcome = 'refused' AND o.attempts + 1 >= $5 THEN 'dead'
                  ELSE 'pending' END,
    relayed_at = CASE WHEN u.outcome = 'relayed' THEN now() ELSE o.relayed_at END,
    attempts = o.attempts + CASE WHEN u.outcome = 'refused' THEN 1 ELSE 0 END,
    last_error = CASE WHEN u.outcome = 'refused' THEN u.err ELSE o.last_error END,
    next_attempt_at = CASE WHEN u.outcome = 'refused' THEN now() + make_interval(secs => u.retry_s) ELSE o.next_attempt_at END,
    position = CASE WHEN o.keep_position THEN o.position WHEN u.outcome = 'relayed' THEN u.pos END
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::float8[], $6::bigint[]) AS u(id, outcome, err, retry_s, pos)
WHERE o.id = u.id AND o.id = ANY($1::bigint[]) AND o.status = 'pending'
  AND CASE WHEN o.keep_position THEN o.position = u.pos ELSE EXISTS (SELECT 1 FROM batch) END`

// markBatch stores the outcomes and returns how many rows were parked as dead.
//
// The mark commits with synchronous_commit = off (this transaction only): it returns before its
// WAL is flushed, so the leader does not wait for an fsync between batches. A crash (of
// PostgreSQL or the machine) may lose the last marks of up to ~3×wal_writer_delay; those rows
// are then still pending with a position, the next leader clears it and publishes them again —
// a duplicate, the at-least-once we promise anyway, never a loss. The claim (position
// assignment) stays synchronous: a lost position could be handed out twice. A later synchronous
// commit (the next claim) flushes the WAL up to it, marks included.
//
// BEGIN, the SET LOCALs, the update and COMMIT go in one pipelined round trip. If the update fails
// the session is left in an aborted transaction; pgxpool discards a connection released in
// that state.
func markBatch(ctx context.Context, conn interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}, results []result, inflight int64, maxAttempts int) (dead int, err error) {
	if len(results) == 0 {
		return 0, nil
	}
	ids := make([]int64, len(results))
	outcomes := make([]string, len(results))
	errs := make([]string, len(results))
	retry := make([]float64, len(results))
	pos := make([]int64, len(results))
	for i, r := range results {
		pos[i] = r.row.position
		ids[i] = r.row.id
		outcomes[i] = [...]string{"relayed", "refused", "released"}[r.outcome]
		errs[i] = r.err
		retry[i] = r.retryIn.Seconds()
		if r.outcome == refused && r.row.attempts+1 >= maxAttempts {
			dead++
		}
	}
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue("SET LOCAL synchronous_commit = off")
	// The leader's session plans generically (leaderConfig); the mark's generic plan joins outbox
	// to the unnest with a nested loop that re-reads the arrays for every row, so this statement
	// alone is planned with its arguments.
	b.Queue("SET LOCAL plan_cache_mode = force_custom_plan")
	b.Queue(markSQL, ids, outcomes, errs, retry, maxAttempts, pos, inflight)
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("mark outbox rows: %w", err)
	}
	return dead, nil
}
