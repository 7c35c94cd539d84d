package outbox

import (
	"context"
	"encoding/json"
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
}

// claimSQL takes the next pending rows in id order and numbers those without a position from
// outbox_position_seq, in id order, in one statement (one implicit transaction): the positions are
// committed before anything is published, and because only the leader claims, they grow in relay
// order. A row is skipped while an earlier row of its author waits for a retry (order per author;
// only refused rows, attempts > 0, ever wait: the partial index outbox_retrying answers it);
// $2 lists rows still in flight in this leader, which stay pending until marked.
//
// nextval in the outer select of an ordered subquery is evaluated in the subquery's order; the
// relay still checks that positions grow with ids (claimBatch) rather than trusting it blindly.
// claimed carries every outbox column the relay needs: joining outbox again by id made the
// planner hash-join a sequential scan of the whole (ever-growing, rows are kept) table. The
// OFFSET 0 fences keep the per-row index lookups (events by id, earlier pending rows of the author
// by outbox_retrying): the planner, misled by the CTE's row estimate, otherwise picked
// hash joins over sequential scans of events and outbox — 20 ms per claim at 20,000 rows, growing.
const claimSQL = `
WITH claimed AS (
    SELECT o.id, o.position, o.event_id, o.author_user_id, o.attempts, o.created_at FROM outbox o
    WHERE o.status = 'pending' AND o.next_attempt_at <= now() AND o.id <> ALL($2::bigint[])
      AND NOT EXISTS (
          SELECT 1 FROM outbox w
          WHERE w.status = 'pending' AND w.attempts > 0 AND w.author_user_id = o.author_user_id
            AND w.id < o.id AND w.next_attempt_at > now() OFFSET 0)
    ORDER BY o.id
    LIMIT $1
), numbered AS (
    SELECT s.id, nextval('outbox_position_seq') AS pos
    FROM (SELECT id FROM claimed WHERE position IS NULL ORDER BY id) s
), assigned AS (
    UPDATE outbox o SET position = n.pos FROM numbered n WHERE o.id = n.id RETURNING o.id
)
SELECT c.id, c.event_id::text, c.author_user_id::text, COALESCE(n.pos, c.position), n.pos IS NOT NULL,
       c.attempts, c.created_at, e.type, e.payload, e.created_at
FROM claimed c
CROSS JOIN LATERAL (SELECT type, payload, created_at FROM events WHERE id = c.event_id OFFSET 0) e
LEFT JOIN numbered n ON n.id = c.id
ORDER BY c.id`

// claimBatch claims up to limit rows on the leader's connection and encodes their frames.
func claimBatch(ctx context.Context, conn *pgx.Conn, limit int, inFlight []int64) ([]*row, error) {
	if inFlight == nil {
		inFlight = []int64{}
	}
	rows, err := conn.Query(ctx, claimSQL, limit, inFlight)
	if err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	defer rows.Close()
	var out []*row
	var lastFresh int64 // the last position numbered by this claim
	for rows.Next() {
		r := &row{}
		var typ string
		var payload []byte
		var at time.Time
		var fresh bool
		if err := rows.Scan(&r.id, &r.eventID, &r.author, &r.position, &fresh, &r.attempts, &r.createdAt, &typ, &payload, &at); err != nil {
			return nil, fmt.Errorf("claim outbox rows: %w", err)
		}
		var p domain.PostChanged
		if err := json.Unmarshal(payload, &p); err != nil {
			// Cannot happen for events we wrote; relaying an empty frame would be worse than
			// stopping, and the row stays pending.
			return nil, fmt.Errorf("decode event %s payload: %w", r.eventID, err)
		}
		if r.frame, err = json.Marshal(domain.NewFeedFrame(typ, p, r.position, at)); err != nil {
			return nil, fmt.Errorf("encode frame of event %s: %w", r.eventID, err)
		}
		// Positions numbered by this claim must grow with id. Replayed rows keep their old
		// positions, which need not follow id order, so they are not checked.
		if fresh {
			if r.position <= lastFresh {
				return nil, fmt.Errorf("claim outbox rows: positions out of id order (%d after %d)", r.position, lastFresh)
			}
			lastFresh = r.position
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim outbox rows: %w", err)
	}
	return out, nil
}

// clearStalePositions runs when a relay becomes leader: pending rows with a position that are not
// replays were claimed by a leader that died before marking them (it may have published some:
// at-least-once). They get fresh positions when claimed again, above every position already
// handed out, so the ordering promise holds.
func clearStalePositions(ctx context.Context, conn *pgx.Conn) (int64, error) {
	tag, err := conn.Exec(ctx, `UPDATE outbox SET position = NULL
		WHERE status = 'pending' AND NOT keep_position AND position IS NOT NULL`)
	if err != nil {
		return 0, fmt.Errorf("clear positions of unfinished rows: %w", err)
	}
	return tag.RowsAffected(), nil
}

// outcome of one row after publishing.
type outcome uint8

const (
	// relayed: the broker confirmed every message of the row.
	relayed outcome = iota
	// refused: the broker nacked a message of the row; counts as an attempt.
	refused
	// released: not (fully) published for a reason that is not the row's fault (broker
	// unavailable, an earlier row of the author failed, batch bound); no attempt counted.
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

// markSQL applies the outcomes of one batch in one statement. It runs on a pool connection, not
// the leader's (so marking overlaps the next claim), hence not fenced by the leader lock: a row
// is only marked while it still has the position this leader claimed it with. A leader cut off
// mid-batch cannot clobber rows its successor re-numbered (it clears positions first); a replay
// row keeps its position across leaders, and a late mark of it by the old leader only records
// what the broker did confirm. The o.id = ANY($1) gives the planner an index condition (it
// hash-joined a sequential scan of the whole outbox otherwise). Rows that are not relayed lose
// their position unless they are replays (keep_position): their next publish gets a new, higher
// one, so no reader sees a position go backwards.
const markSQL = `
UPDATE outbox o SET
    status = CASE WHEN u.outcome = 'relayed' THEN 'relayed'
                  WHEN u.outcome = 'refused' AND o.attempts + 1 >= $5 THEN 'dead'
                  ELSE 'pending' END,
    relayed_at = CASE WHEN u.outcome = 'relayed' THEN now() ELSE o.relayed_at END,
    attempts = o.attempts + CASE WHEN u.outcome = 'refused' THEN 1 ELSE 0 END,
    last_error = CASE WHEN u.outcome = 'refused' THEN u.err ELSE o.last_error END,
    next_attempt_at = CASE WHEN u.outcome = 'refused' THEN now() + make_interval(secs => u.retry_s) ELSE o.next_attempt_at END,
    position = CASE WHEN u.outcome = 'relayed' OR o.keep_position THEN o.position ELSE NULL END
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::float8[], $6::bigint[]) AS u(id, outcome, err, retry_s, pos)
WHERE o.id = u.id AND o.id = ANY($1::bigint[]) AND o.status = 'pending' AND o.position = u.pos`

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
// BEGIN, SET LOCAL, the update and COMMIT go in one pipelined round trip. If the update fails
// the session is left in an aborted transaction; pgxpool discards a connection released in
// that state.
func markBatch(ctx context.Context, conn interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}, results []result, maxAttempts int) (dead int, err error) {
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
	b.Queue(markSQL, ids, outcomes, errs, retry, maxAttempts, pos)
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return 0, fmt.Errorf("mark outbox rows: %w", err)
	}
	return dead, nil
}
