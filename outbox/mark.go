package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

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
