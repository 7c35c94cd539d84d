package outbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Relay moves outbox rows to the broker: it claims rows (their positions committed), reads each
// row's online recipients grouped by realtime instance (route.go, from the leader's copy of
// presence, presence.go), publishes one message per instance through Watermill's
// message.Publisher (topic = the instance's id) and marks the rows relayed once the broker
// confirmed them.
//
// Why the order claim → route → publish makes the hand-over exact (design.md §3): route brings
// its copy of presence up to date in a snapshot taken after the batch's positions committed, and
// a realtime instance commits a user's presence before it reads that user's resume. So each row
// is either committed before the resume's snapshot (the resume reads it from outbox_inflight or
// outbox) or routed after the presence commit (route sees the user); when both happen, the
// socket drops the position it already has. Reading presence inside the claim's statement, or
// catching up before it, would break this: that snapshot precedes the claim's commit, and a
// user whose presence committed in between would be neither routed nor resumed.
//
// Several relays may run (one per dispatcher process); exactly one is the leader at a time, elected
// by a session advisory lock held on a dedicated connection. We chose leadership over partitioning
// by author because positions must grow in relay order across all authors (design.md §3): one
// sequencer is the simplest thing that keeps that. The leader claims, routes and marks on the
// connection that holds the lock, one batch at a time, so a leader whose connection died can no
// longer claim; if it was cut off mid-batch, the next leader forgets its unmarked batch and relays
// its rows again with fresh positions (at-least-once: sockets drop positions they have, clients
// dedupe by event).
type Relay struct {
	cfg     Config
	log     *slog.Logger
	metrics *relayMetrics
	leader  atomic.Bool
}

// NewRelay validates cfg and registers the metrics.
func NewRelay(cfg Config) (*Relay, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newRelayMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("outbox relay metrics: %w", err)
	}
	return &Relay{cfg: cfg, log: cfg.Logger, metrics: m}, nil
}

// IsLeader reports whether this relay currently holds the leader lock.
func (r *Relay) IsLeader() bool { return r.leader.Load() }

// Run relays until ctx ends, then returns nil. Database or broker outages are retried with
// backoff forever (the backlog stays in PostgreSQL); Run never returns because of them.
func (r *Relay) Run(ctx context.Context) error {
	failures := 0
	for ctx.Err() == nil {
		start := time.Now()
		err := r.lead(ctx)
		r.leader.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > time.Minute {
			failures = 0
		}
		wait := backoff(failures, r.cfg.ErrorBackoffMin, r.cfg.ErrorBackoffMax)
		failures++
		r.log.Warn("outbox relay: connection to the database lost, retrying", slog.Any("err", err), slog.Duration("retry_in", wait))
		sleep(ctx, wait)
	}
	return nil
}

// lead opens the dedicated connection, waits to become leader and relays until an error.
func (r *Relay) lead(ctx context.Context) error {
	cc := leaderConfig(r.cfg.Pool, r.cfg.planCacheMode)
	conn, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		// Closing the session releases the advisory lock at once: a successor need not wait
		// for a timeout.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	for {
		var got bool
		if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", r.cfg.LockKey).Scan(&got); err != nil {
			return fmt.Errorf("try leader lock: %w", err)
		}
		if got {
			break
		}
		// Not the leader: wait, consuming notifications so they do not pile up in memory.
		if _, err := waitNotification(ctx, conn, r.cfg.LeaderRetryInterval); err != nil {
			return err
		}
	}
	r.leader.Store(true)
	n, err := resetUnfinished(ctx, conn)
	if err != nil {
		return err
	}
	r.log.Info("outbox relay: leader", slog.Int64("unfinished_rows_requeued", n))
	return r.relayLoop(ctx, conn)
}

// leaderConfig is the leader's session.
//
// The claim runs as a prepared statement thousands of times, and its plan must not depend on
// the statistics of the moment: a fresh system polls an empty outbox, then a burst fills it
// long before autovacuum analyzes it again, and plans made from such statistics read whole
// tables sequentially, a stall proportional to the backlog. Every table the leader reads has the
// index it needs, so this session forbids sequential scans (they stay possible where no index
// exists: the planner only makes them costly) and plans each statement once, generically: the
// same index-only shape whatever the statistics, and no planning on every post's path.
// TestCelebrityBurstDoesNotHoldOtherAuthors runs the leader under generic and custom plans. JIT
// is off: a plan that still holds a (disabled) sequential scan costs past jit_above_cost, and
// compiling it takes far longer than the millisecond queries the leader runs.
func leaderConfig(pool *pgxpool.Pool, planCacheMode string) *pgx.ConnConfig {
	cc := pool.Config().ConnConfig.Copy()
	cc.RuntimeParams["plan_cache_mode"] = cmp.Or(planCacheMode, "force_generic_plan")
	cc.RuntimeParams["enable_seqscan"] = "off"
	cc.RuntimeParams["jit"] = "off"
	return cc
}

// relayLoop claims, routes, publishes and marks batches until ctx ends (nil) or the database
// fails (error).
//
// The leader claims when something may be waiting: at the start (rows from before this leader),
// after a full claim (LIMIT left some), after a batch that gave rows back (released or refused
// rows) or relayed a retried row (its author's later rows waited behind it), when notified, and
// every PollInterval (a retry falling due, a lost notification). No row waits for the poll: the
// commit that notifies follows the row's insert, so a claim that starts after the notification
// arrived sees the row.
func (r *Relay) relayLoop(ctx context.Context, conn *pgx.Conn) error {
	more := true
	var lastClaim time.Time
	var view presenceView // this leadership's copy of presence: a new leader reads it whole
	brokerFailures := 0
	for ctx.Err() == nil {
		if !more {
			wait := r.cfg.PollInterval - time.Since(lastClaim)
			if wait > 0 {
				if _, err := waitNotification(ctx, conn, wait); err != nil {
					return err
				}
				if ctx.Err() != nil {
					return nil
				}
			}
		}
		// The full read of presence comes before the claim, never between a claim and its
		// publish, and on a quiet system it falls on a poll's wake-up rather than a post's.
		if view.due() {
			start := time.Now()
			if err := view.load(ctx, conn); err != nil {
				return err
			}
			r.metrics.presenceLoads.Observe(time.Since(start).Seconds())
		}
		lastClaim = time.Now()
		c, err := claimBatch(ctx, conn, r.cfg.BatchSize)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if len(c.rows) == 0 {
			r.metrics.claimsEmpty.Inc()
			more = false
			continue
		}
		r.metrics.claimsRows.Inc()
		r.metrics.claimed.Observe(time.Since(lastClaim).Seconds())
		results, brokerErr, err := r.relayBatch(ctx, conn, &view, c)
		if err != nil {
			return err // the batch stays in outbox_inflight; the next leader relays it again
		}
		// Marked even when ctx ended: rows the broker confirmed should not be sent twice.
		markStart := time.Now()
		markCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		dead, err := markBatch(markCtx, conn, results, c.inflight, r.cfg.MaxAttempts)
		cancel()
		if err != nil {
			return err
		}
		r.metrics.marked.Observe(time.Since(markStart).Seconds())
		r.observe(results, dead)
		more = len(c.rows) >= r.cfg.BatchSize || !allRelayed(results) || retried(c.rows)
		if brokerErr != nil {
			wait := backoff(brokerFailures, r.cfg.ErrorBackoffMin, r.cfg.ErrorBackoffMax)
			brokerFailures++
			r.log.Warn("outbox relay: broker unavailable, backlog kept in the database", slog.Any("err", brokerErr), slog.Duration("retry_in", wait))
			sleep(ctx, wait)
		} else {
			brokerFailures = 0
		}
	}
	return nil
}

// relayBatch routes and publishes a claimed batch and decides each row's outcome. err is a
// database failure (the leader reconnects); brokerErr a publish failure (the rows were released
// and the leader backs off).
func (r *Relay) relayBatch(ctx context.Context, conn *pgx.Conn, view *presenceView, c claim) (results []result, brokerErr, err error) {
	start := time.Now()
	rt, err := route(ctx, conn, c.rows, view)
	if err != nil {
		return nil, nil, err
	}
	r.metrics.routed.Observe(time.Since(start).Seconds())
	start = time.Now()
	ims := build(c.rows, rt)
	// Sends survive cancellation of ctx: a batch already routed is published and marked rather
	// than left to the next leader (the publisher's own progress timeout bounds the wait).
	errs := r.publish(context.WithoutCancel(ctx), ims)
	r.metrics.published.Observe(time.Since(start).Seconds())
	results, brokerErr = r.outcomes(c.rows, ims, errs)
	return results, brokerErr, nil
}

// retried says a batch had a row that had failed before: later rows of its author were skipped
// while it waited, and no notification will announce them.
func retried(rows []*row) bool {
	for _, rw := range rows {
		if rw.attempts > 0 {
			return true
		}
	}
	return false
}

// allRelayed says every row of a batch was relayed: none stays pending for a claim to take again.
func allRelayed(results []result) bool {
	for _, res := range results {
		if res.outcome != relayed {
			return false
		}
	}
	return true
}

func (r *Relay) observe(results []result, dead int) {
	r.metrics.deadRows.Add(float64(dead))
	for _, res := range results {
		if res.outcome == relayed {
			r.metrics.relayedRows.Inc()
			r.metrics.latency.Observe(res.confirmedAt.Sub(res.row.createdAt).Seconds())
		}
	}
}

// waitNotification sleeps until a NOTIFY arrives or timeout passes (notified says which); then it
// drops the notifications pgx has already received (one wake-up is enough for any number of new
// rows). A timeout is not an error; a broken connection is.
//
// The drop never waits: any wait, however short, costs a millisecond (an idle Go runtime sleeps in
// epoll_wait, whose timeout is in milliseconds), on every post's path to its followers.
// Notifications still unread on the socket wake the next wait at once: one more claim, which may
// find nothing; never a row left behind (the claim after this call sees every row committed
// before it). That claim's round trip reads them into pgx's buffer, and the drop after the next
// wake takes them.
func waitNotification(ctx context.Context, conn *pgx.Conn, timeout time.Duration) (notified bool, err error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	_, err = conn.WaitForNotification(wctx)
	cancel()
	if ctx.Err() != nil {
		return false, nil
	}
	if err != nil {
		if !errors.Is(err, context.DeadlineExceeded) && !pgconnTimeout(err) {
			return false, fmt.Errorf("wait for notification: %w", err)
		}
		return false, nil
	}
	// With a context that has already ended, pgx hands out what it has parsed and returns
	// before it would touch the socket.
	for {
		if n, _ := conn.WaitForNotification(doneContext); n == nil {
			return true, nil
		}
	}
}

// doneContext has already ended.
var doneContext = func() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}()

func pgconnTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
