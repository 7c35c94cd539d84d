package outbox

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/internal/setting"
)

// ReplayFilter selects the relayed events to re-enqueue. Every bound is inclusive except Until.
type ReplayFilter struct {
	// FromPosition is the first position replayed (>= 0).
	FromPosition int64
	// ToPosition is the last position replayed; 0 means the highest position relayed when the replay
	// starts (rows relayed while it runs are live traffic, not part of the replay).
	ToPosition int64
	// Since and Until bound the event time (events.created_at): Since <= t < Until. Zero: unbounded.
	Since, Until time.Time
	// Author keeps only the events of this user id (a UUID); empty keeps every author.
	Author string
	// Types keeps only these event types (domain.RelayedEventTypes); empty keeps all.
	Types []string
}

// Validate reports every problem of f, joined.
func (f ReplayFilter) Validate() error {
	var errs []error
	if f.FromPosition < 0 {
		errs = append(errs, fmt.Errorf("from-position %d: must be >= 0", f.FromPosition))
	}
	if f.ToPosition < 0 {
		errs = append(errs, fmt.Errorf("to-position %d: must be >= 0", f.ToPosition))
	} else if f.ToPosition != 0 && f.ToPosition < f.FromPosition {
		errs = append(errs, fmt.Errorf("reversed range: to-position %d is below from-position %d", f.ToPosition, f.FromPosition))
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		errs = append(errs, fmt.Errorf("reversed range: until %s is not after since %s",
			f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339)))
	}
	if f.Author != "" {
		if _, err := uuid.Parse(f.Author); err != nil {
			errs = append(errs, fmt.Errorf("author %q: not a user id (UUID)", f.Author))
		}
	}
	for _, t := range f.Types {
		if !domain.IsRelayedEventType(t) {
			errs = append(errs, fmt.Errorf("type %q: unknown, want one of %s", t, strings.Join(domain.RelayedEventTypes(), ", ")))
		}
	}
	return errors.Join(errs...)
}

// DefaultReplayBatch is the number of rows a replay enqueues per transaction.
const DefaultReplayBatch = 200

// ReplayOptions configures Replay.
type ReplayOptions struct {
	ReplayFilter
	// DryRun only counts the matching rows.
	DryRun bool
	// BatchSize is the number of rows enqueued per transaction (default DefaultReplayBatch, at most
	// 10,000). It is also how far live posts may fall behind while WaitRelayed is set.
	BatchSize int
	// WaitRelayed makes Replay enqueue the next batch only once the dispatcher has relayed (or
	// parked as dead) every row of the previous one. Without it a replay enqueues as fast as the
	// database allows, and live posts queue behind all of it: use that only when no traffic flows.
	WaitRelayed bool
	// PollInterval is how often a waiting replay looks at its batch (default 100 ms).
	PollInterval time.Duration
	// Progress, when set, is called after the count, after each batch and while waiting.
	Progress func(ReplayProgress)
}

// ReplayProgress reports a running replay.
type ReplayProgress struct {
	// Matched is the number of relayed rows that matched when the replay started.
	Matched int64
	// Enqueued is the number of rows set back to pending so far.
	Enqueued int64
	// Position is the highest position handled so far (the resume point is Position+1).
	Position int64
	// Waiting is the number of rows of the last batch the dispatcher has not relayed yet.
	Waiting int64
}

// ReplayResult is what a replay did. When Replay returns an error, the result still says how far
// it got: every row up to LastPosition that matched has been enqueued (or was already pending).
type ReplayResult struct {
	// Matched is the number of relayed rows in the range when the replay started.
	Matched int64
	// Enqueued is the number of rows this run set back to pending.
	Enqueued int64
	// ToPosition is the upper bound actually used (the highest relayed position at start when the
	// filter left it open).
	ToPosition int64
	// LastPosition is the highest position handled; 0 when no batch ran.
	LastPosition int64
	// Done reports that the whole range was handled.
	Done bool
}

// replayBatchTimeout bounds one batch's statement, which an interrupt does not cut short.
const replayBatchTimeout = 30 * time.Second

// ResumeFrom is the --from-position that continues an interrupted replay without enqueueing any
// row of it twice.
func (r ReplayResult) ResumeFrom(f ReplayFilter) int64 {
	if r.LastPosition == 0 {
		return f.FromPosition
	}
	return r.LastPosition + 1
}

// Replay sets the relayed outbox rows that match opts back to 'pending' with keep_position = true,
// so the dispatcher publishes them again with their original position and event id (clients
// dedupe them like any duplicate). It works through the range in position order, one short
// transaction per batch, so no transaction is unbounded and a cancelled ctx stops it between
// batches or rolls back the batch in flight: nothing is half-done.
//
// Only rows in status 'relayed' are touched. A row that is pending already (a live row being
// relayed, or a row an interrupted replay enqueued that the dispatcher has not reached) is neither
// enqueued nor counted again, and dead rows are left to RetryDead. Running the same replay twice is
// therefore harmless; resuming an interrupted one with --from-position ResumeFrom() enqueues every
// row of the range exactly once, even when the dispatcher re-relayed the first part in between.
//
// Why this is safe under live traffic: the dispatcher claims pending rows in id order, and a
// replayed row keeps its old, small id, so it jumps AHEAD of every live row. That is acceptable
// only because we bound it: with WaitRelayed, Replay enqueues the next batch only after the
// dispatcher relayed the previous one, so at any moment at most one batch of replayed rows stands
// in front of a live post: a live post is delayed by at most one batch, never by the whole replay.
// Per-author order is kept by the dispatcher (a replayed row of author A goes before A's live rows);
// if a replayed row fails to publish, A's live rows wait behind its retries until it is parked as
// dead, which is the dispatcher's ordinary rule for any row.
func Replay(ctx context.Context, pool *pgxpool.Pool, opts ReplayOptions) (ReplayResult, error) {
	if err := opts.Validate(); err != nil {
		return ReplayResult{}, err
	}
	setting.Default(&opts.BatchSize, DefaultReplayBatch)
	if opts.BatchSize > 10_000 {
		return ReplayResult{}, fmt.Errorf("batch size %d: at most 10000", opts.BatchSize)
	}
	setting.Default(&opts.PollInterval, 100*time.Millisecond)
	progress := opts.Progress
	if progress == nil {
		progress = func(ReplayProgress) {}
	}
	f := opts.ReplayFilter
	res := ReplayResult{ToPosition: f.ToPosition}
	if res.ToPosition == 0 {
		// Freeze the open end: otherwise a replay would chase live traffic for ever.
		err := pool.QueryRow(ctx, `SELECT coalesce(max(position), 0) FROM outbox WHERE status = 'relayed'`).Scan(&res.ToPosition)
		if err != nil {
			return res, fmt.Errorf("replay: find last relayed position: %w", err)
		}
	}
	args := filterArgs(f, res.ToPosition)
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox o JOIN events e ON e.id = o.event_id WHERE `+replayWhere, args...).Scan(&res.Matched); err != nil {
		return res, fmt.Errorf("replay: count matching rows: %w", err)
	}
	progress(ReplayProgress{Matched: res.Matched})
	if opts.DryRun || res.Matched == 0 {
		res.Done = true
		return res, nil
	}

	cursor := f.FromPosition // next position to look at
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		// A batch runs to its end even when ctx ends meanwhile (an operator's Ctrl-C): its UPDATE
		// commits on the server whether or not the client waits for the answer, and a batch
		// committed but not counted would make the printed resume command skip nothing it should
		// and the count lie. ctx is checked between batches instead.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), replayBatchTimeout)
		ids, last, err := replayBatch(bctx, pool, args, cursor, opts.BatchSize)
		cancel()
		if err != nil {
			return res, err
		}
		if len(ids) == 0 {
			res.Done = true
			return res, nil
		}
		res.Enqueued += int64(len(ids))
		res.LastPosition, cursor = last, last+1
		progress(ReplayProgress{Matched: res.Matched, Enqueued: res.Enqueued, Position: last})
		if len(ids) < opts.BatchSize {
			// Fewer rows than asked means the range is exhausted: PostgreSQL applies LIMIT after
			// locking, so a row a concurrent replay took is replaced by the next one rather than
			// shrinking the batch. No wait for the last batch: nothing of ours queues behind it.
			res.Done = true
			return res, nil
		}
		if opts.WaitRelayed {
			if err := waitRelayed(ctx, pool, ids, opts.PollInterval, func(n int64) {
				progress(ReplayProgress{Matched: res.Matched, Enqueued: res.Enqueued, Position: last, Waiting: n})
			}); err != nil {
				return res, err
			}
		}
	}
}

// replayWhere selects the replayable rows: $1..$2 position range, $3/$4 event time, $5 author,
// $6 types (NULL = no filter).
const replayWhere = `o.status = 'relayed' AND o.position >= $1 AND o.position <= $2
	AND ($3::timestamptz IS NULL OR e.created_at >= $3)
	AND ($4::timestamptz IS NULL OR e.created_at < $4)
	AND ($5::uuid IS NULL OR o.author_user_id = $5)
	AND ($6::text[] IS NULL OR e.type = ANY($6))`

func filterArgs(f ReplayFilter, to int64) []any {
	args := []any{f.FromPosition, to, nil, nil, nil, nil}
	if !f.Since.IsZero() {
		args[2] = f.Since
	}
	if !f.Until.IsZero() {
		args[3] = f.Until
	}
	if f.Author != "" {
		args[4] = f.Author
	}
	if len(f.Types) > 0 {
		args[5] = f.Types
	}
	return args
}

// replayBatch enqueues the next batch at or after position from, in one transaction, and wakes the
// dispatcher. FOR UPDATE makes a concurrent replay of the same range wait, then skip the rows this
// one took (they are no longer 'relayed' when it re-checks them), so two operators running the
// same command never enqueue a row twice.
func replayBatch(ctx context.Context, pool *pgxpool.Pool, filter []any, from int64, limit int) (ids []int64, last int64, err error) {
	args := append([]any{}, filter...)
	args[0] = from
	args = append(args, limit)
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `WITH batch AS (
				SELECT o.id FROM outbox o JOIN events e ON e.id = o.event_id
				WHERE `+replayWhere+`
				ORDER BY o.position LIMIT $7
				FOR UPDATE OF o)
			UPDATE outbox o SET status = 'pending', keep_position = true, attempts = 0,
				last_error = NULL, next_attempt_at = now()
			FROM batch WHERE o.id = batch.id
			RETURNING o.id, o.position`, args...)
		if err != nil {
			return err
		}
		ids, last = ids[:0], 0
		for rows.Next() {
			var id, pos int64
			if err := rows.Scan(&id, &pos); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
			last = max(last, pos)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(ids) > 0 {
			// The outbox trigger fires on INSERT only; without this the dispatcher would notice
			// the batch at its next poll.
			if _, err := tx.Exec(ctx, `SELECT pg_notify($1, '')`, NotifyChannel); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("replay batch from position %d: %w", from, err)
	}
	return ids, last, nil
}

// waitRelayed polls until none of ids is pending any more (relayed, or dead after its retries).
func waitRelayed(ctx context.Context, pool *pgxpool.Pool, ids []int64, every time.Duration, report func(int64)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var n int64
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM outbox WHERE id = ANY($1) AND status = 'pending'`, ids).Scan(&n); err != nil {
			return fmt.Errorf("replay: wait for the dispatcher: %w", err)
		}
		if n == 0 {
			return nil
		}
		report(n)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
