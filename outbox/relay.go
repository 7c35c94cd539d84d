package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/outbox/broker"
)

// Relay moves outbox rows to the broker: it claims rows, expands each post event to the author's
// followers, publishes one message per chunk of followers and marks the rows relayed once every
// message of a row was confirmed.
//
// Several relays may run (one per dispatcher process); exactly one is the leader at a time, elected
// by a session advisory lock held on a dedicated connection. We chose leadership over partitioning
// by author because positions must grow in relay order across all authors (design.md §3): one
// sequencer is the simplest thing that keeps that, and one leader already saturates the broker
// (followers are fanned out by the broker, not by us). The leader claims on the same connection
// that holds the lock, so a leader whose connection died can no longer claim; if it was cut off
// mid-batch, the next leader forgets its unmarked batches and relays their rows again with fresh
// positions (at-least-once: consumers dedupe by event id).
type Relay struct {
	cfg   Config
	split split
	// bulk publishes the pages after the first of big fan-outs (and rows deferred behind them),
	// split over its own lanes: cfg.BulkPublisher, or cfg.Publisher.
	bulk      broker.Publisher
	bulkSplit split
	log       *slog.Logger
	metrics   *relayMetrics
	leader    atomic.Bool
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
	// Each follower's messages go on that follower's lane of the publisher (one lane: one order
	// for everything).
	bulk := cfg.BulkPublisher
	if bulk == nil {
		bulk = cfg.Publisher
	}
	return &Relay{cfg: cfg, split: splitFor(cfg.Publisher, cfg.PageSize), bulk: bulk, bulkSplit: splitFor(bulk, cfg.PageSize),
		log: cfg.Logger, metrics: m}, nil
}

func splitFor(pub broker.Publisher, size int) split {
	return split{size: size, lanes: max(1, pub.Lanes())}
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
	cc := leaderConfig(r.cfg.Pool)
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
	if _, err := conn.Exec(ctx, "LISTEN social_outbox"); err != nil {
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
// long before autovacuum analyzes it again. Plans made from such statistics read the tables
// sequentially: socialbench e2e caught a generic claim (kept after five runs) taking 500 ms of
// CPU per call that way, and a custom one, made on every run, took 16 ms for 500 rows against
// 4 ms by index (EXPLAIN ANALYZE, outbox analyzed empty, then 20,000 rows). Every table the
// claim reads has the index it needs, so this session forbids sequential scans (they stay
// possible where no index exists: the planner only makes them costly) and plans each statement
// once, generically: the same index-only shape whatever the statistics, and no planning per
// claim (0.5–0.8 ms each, which every post's path to its followers paid).
// TestClaimPlanReadsByIndex checks the shape. JIT is off: a plan that still holds a (disabled)
// sequential scan, e.g. of the tiny outbox_inflight, costs past jit_above_cost, and compiling it
// took 90–100 ms of a new leader's first statement (resetUnfinished) to run a 0.2 ms query.
func leaderConfig(pool *pgxpool.Pool) *pgx.ConnConfig {
	cc := pool.Config().ConnConfig.Copy()
	cc.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	cc.RuntimeParams["enable_seqscan"] = "off"
	cc.RuntimeParams["jit"] = "off"
	return cc
}

// pipelineDepth is how many claimed batches may be unmarked at once: one being confirmed while the
// next is claimed, expanded and published, so the broker never waits for the database (claim,
// follower reads, mark) nor the database for the broker's confirms.
const pipelineDepth = 3

// relayLoop claims and relays batches until ctx ends (nil) or the database fails (error).
//
// The leader goroutine claims on conn (fenced by the leader lock held by that session); an emit
// goroutine expands and writes each batch; a confirm goroutine waits for the broker's confirms in order and marks each batch on a pool
// connection as soon as its confirms are in (see markSQL for its fence). Batch N+1 is claimed
// (skipping N's rows, still pending until marked) and published while N's confirms are
// outstanding. Batches are marked in claim order; a row leaves the in-flight list only once its
// mark committed, so no claim takes it twice.
func (r *Relay) relayLoop(ctx context.Context, conn *pgx.Conn) (err error) {
	pl := &pipeline{blocked: map[string]int64{}}
	// Three goroutines, in claim order: this one claims (the database's share of a batch), the
	// emitter expands and writes (follower pages, Send), the confirmer waits and marks. Each
	// stage works on a different batch. Groups in flight are bounded by sentCh (about 4 groups of
	// PublishGroup messages), batches by pipelineDepth.
	emitCh := make(chan *batch, 1)
	// Room for the bulk window and a few main groups: the emitter must not wait for the confirmer
	// to take a main group while the confirmer waits for a bulk one.
	sentCh := make(chan sent, 4*bulkWindow+8)
	doneCh := make(chan *batch, pipelineDepth+1)
	fl := newBulkInFlight()
	// The emitter stops with this loop, whatever the reason: a leader that lost its session (the
	// lock went with it) must not go on publishing a big fan-out's pages at old positions while
	// its successor relays the same rows again.
	emitCtx, stopEmitter := context.WithCancel(ctx)
	go r.emitLoop(emitCtx, pl, fl, emitCh, sentCh)
	go r.confirm(ctx, pl, fl, sentCh, doneCh)

	var (
		seq, lastMarked int64
		outstanding     int
		inFlight        = map[int64]struct{}{} // ids of rows claimed and not yet marked
		brokerFailures  int
		markErr         error
		// more says a claim may find rows no notification will announce: at the start (rows
		// from before this leader), after a full claim (LIMIT left some), after a batch that
		// gave rows back (released or refused rows, a broker failure) or relayed a retried row
		// (its author's later rows waited behind it), and every PollInterval
		// (a retry falling due, a lost notification). Otherwise the leader claims only when
		// notified. It used to claim after every claim and every mark: at a steady 100 posts/s,
		// 1,692 claims for 1,028 rows, 40 % of them finding nothing (a round trip each, cheap
		// for the database; social_outbox_claims_total counts both kinds). No row waits for
		// the poll this way: the commit that notifies follows the row's insert, so a claim that
		// starts after the notification arrived sees the row.
		more      = true
		lastClaim time.Time
	)
	// mark takes a batch the confirmer marked (or failed to mark).
	mark := func(b *batch) {
		outstanding--
		if b.markErr != nil {
			// The rows stay pending and their batch stays in outbox_inflight; the next leader
			// forgets it and relays the rows again (at-least-once).
			markErr = b.markErr
			return
		}
		for _, rw := range b.rows {
			delete(inFlight, rw.id)
		}
		lastMarked = b.seq
		if b.err != nil || !allRelayed(b.results) || retried(b.rows) {
			// Rows to take again, or an author's later rows that waited behind a retried one.
			more = true
		}
		if b.err != nil && ctx.Err() == nil {
			wait := backoff(brokerFailures, r.cfg.ErrorBackoffMin, r.cfg.ErrorBackoffMax)
			brokerFailures++
			r.log.Warn("outbox relay: broker unavailable, backlog kept in the database", slog.Any("err", b.err), slog.Duration("retry_in", wait))
			sleep(ctx, wait)
		} else if b.err == nil && !pl.down() {
			brokerFailures = 0
		}
		if outstanding == 0 {
			// Nothing in flight any more: the next batch may try the broker again.
			pl.mu.Lock()
			pl.brokerDown = false
			pl.mu.Unlock()
		}
	}
	defer func() {
		// Stop the emitter and the confirmer; take what the confirmer marks (bounded by the
		// publisher's watchdog). From here on this relay does not lead: its session may be gone
		// and a successor may already hold the lock.
		r.leader.Store(false)
		stopEmitter()
		close(emitCh)
		for b := range doneCh {
			mark(b)
		}
		if err == nil && ctx.Err() == nil {
			err = markErr
		}
	}()

	ids := make([]int64, 0, pipelineDepth*r.cfg.BatchSize)
	for ctx.Err() == nil && markErr == nil {
		// Mark every batch the confirmer finished, without waiting.
		select {
		case b := <-doneCh:
			mark(b)
			continue
		default:
		}
		if outstanding >= pipelineDepth || (outstanding > 0 && pl.down()) {
			select {
			case b := <-doneCh:
				mark(b)
			case <-ctx.Done():
			}
			continue
		}
		if !more && time.Since(lastClaim) >= r.cfg.PollInterval {
			more = true
		}
		if !more {
			if outstanding > 0 {
				// A batch is still in flight — a big fan-out may be for a while. Rows committed
				// meanwhile must not wait for it (their NOTIFY wakes a claim at once), nor the
				// batch's mark for a NOTIFY: wait for either, checking the batch every
				// inFlightPoll.
				select {
				case b := <-doneCh:
					mark(b)
				default:
					notified, err := waitNotification(ctx, conn, inFlightPoll)
					if err != nil {
						return err
					}
					more = notified
				}
				continue
			}
			if _, err := waitNotification(ctx, conn, r.cfg.PollInterval-time.Since(lastClaim)); err != nil {
				return err
			}
			// Notified, or the poll is due.
			more = true
			continue
		}
		ids = ids[:0]
		for id := range inFlight {
			ids = append(ids, id)
		}
		lastClaim = time.Now()
		c, err := claimBatch(ctx, conn, r.cfg.BatchSize, ids, r.split)
		rows := c.rows
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		more = len(rows) >= r.cfg.BatchSize
		if len(rows) == 0 {
			r.metrics.claimsEmpty.Inc()
			continue
		}
		r.metrics.claimsRows.Inc()
		seq++
		b := &batch{seq: seq, rows: rows, inflight: c.inflight, firsts: c.firsts, claimedAfter: lastMarked, states: make([]rowState, len(rows))}
		for _, rw := range rows {
			inFlight[rw.id] = struct{}{}
		}
		outstanding++
		emitCh <- b
	}
	if ctx.Err() != nil {
		return nil
	}
	return markErr
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

// inFlightPoll is how often a leader with batches in flight and no new rows checks whether one
// of them finished, between waits for a NOTIFY.
const inFlightPoll = 10 * time.Millisecond

// waitNotification sleeps until a NOTIFY arrives or timeout passes (notified says which); then it
// drops the notifications pgx has already received (one wake-up is enough for any number of new
// rows). A timeout is not an error; a broken connection is.
//
// The drop never waits. It used to wait 1 ms for each further notification, and any wait below a
// millisecond costs one anyway (an idle Go runtime sleeps in epoll_wait, whose timeout is in
// milliseconds): 1.1–1.2 ms of every post's path to its followers, measured (docs/performance.md).
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
