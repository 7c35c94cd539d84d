package outbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/socialnet/social/outbox/broker"
)

// rowState tracks one row while its messages are published.
type rowState struct {
	emitted   int  // messages handed to a group
	confirmed int  // messages the broker confirmed
	complete  bool // every page of followers was emitted
	refused   string
	lost      bool // a message was not confirmed for a reason that is not the row's fault
	unsent    bool // a message was never sent (emitter stopped); written by the emitter only
	at        time.Time
}

// batch is one claim's rows on their way through the pipeline: emitted by the leader goroutine,
// confirmed by the confirm goroutine, marked by the leader goroutine, in claim order.
type batch struct {
	seq  int64
	rows []*row
	// inflight is the batch's outbox_inflight row (0: no fresh positions); the mark deletes it.
	inflight int64
	// firsts are the first follower pages the claim read (claim.firsts).
	firsts map[string]page
	// claimedAfter is the seq of the last batch whose mark had committed when this batch was
	// claimed: the claim saw the outcomes of batches up to it, and none after (they were in
	// flight and excluded from it).
	claimedAfter int64
	// states: the emitter writes emitted, complete, unsent (and at, before any message of the row
	// was sent); the confirmer writes confirmed, refused, lost and at as groups are confirmed, and
	// reads all once the end marker arrives.
	states  []rowState
	results []result
	// err is the first broker or follower-read failure of the batch; the leader backs off.
	err error
	// Emitter only, until the end marker: continuations of the batch still queued, whether its
	// main pass is done (the end marker goes out when both say so), and why it stopped early.
	pending  int
	mainDone bool
	stopErr  error
	// Set by the confirmer after marking: the mark error (the rows stay pending; the leader
	// reconnects) and the rows parked as dead.
	markErr error
	dead    int
}

// sent is one Send call, or the start or end marker of a batch. A batch's groups and end marker
// follow its start marker; groups of later batches may come in between (a big fan-out's
// continuation runs beside them), but starts come in claim order.
type sent struct {
	b      *batch
	wait   broker.Confirms
	owners []int32 // row index in b of each message
	// bulk is set on groups sent on the bulk publisher: released when confirmed; main on groups
	// sent on the main publisher (counted when waited for).
	bulk  *bulkGroup
	main  bool
	start bool
	end   bool
}

// pipeline is the state shared by the emitter (leader goroutine) and the confirmer.
type pipeline struct {
	mu sync.Mutex
	// blocked maps an author to the seq of the latest batch in which one of its rows was not
	// relayed. Rows of that author in any batch claimed before that batch's mark committed are
	// released, even if confirmed: the claim could not see the failure, so they may be later
	// events published ahead of the failed row's retry. Released rows are published again after
	// it (at-least-once; consumers dedupe), so per-author order holds for the last delivery.
	blocked map[string]int64
	// brokerDown is set by the confirmer when a message was lost for a reason that is not the
	// row's fault; the emitter stops sending until the leader has backed off.
	brokerDown bool
}

func (p *pipeline) isBlocked(author string, b *batch) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := p.blocked[author]
	return ok && b.claimedAfter < n
}

func (p *pipeline) down() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.brokerDown
}

var errBrokerDown = errors.New("broker unavailable: a message of an earlier group was lost")

// send hands one group to pub, which writes it and returns at once, so groups of this and the
// next batch are in flight together.
func (r *Relay) send(ctx context.Context, pub broker.Publisher, msgs []broker.Message) broker.Confirms {
	return pub.Send(ctx, r.cfg.Exchange, msgs)
}

type waitDone struct{ err error }

func (w waitDone) Wait() error { return w.err }

// confirm waits for every group in order, records the confirms in their batch, decides the
// outcomes of each finished batch, marks it and hands it to done — batches in claim order: a
// batch that ended behind an unfinished earlier one (a big fan-out still relaying) waits for it.
// It returns when in is closed and drained. Marking here rather than in the leader goroutine lets
// the mark of batch N run beside the claim of N+2 (two database sessions); the broker keeps
// working meanwhile on the groups already written.
func (r *Relay) confirm(ctx context.Context, pl *pipeline, fl *bulkInFlight, in <-chan sent, done chan<- *batch) {
	defer close(done)
	var markErr error
	var order []*batch // started, not yet marked, in claim order
	ended := map[*batch]bool{}
	for s := range in {
		b := s.b
		if s.start {
			order = append(order, b)
			continue
		}
		if s.end {
			if b.stopErr != nil && b.err == nil {
				b.err = b.stopErr
			}
			ended[b] = true
			for len(order) > 0 && ended[order[0]] {
				b := order[0]
				order = order[1:]
				delete(ended, b)
				r.finish(pl, b)
				if markErr == nil {
					// Mark even when ctx ended: rows the broker confirmed should not be sent twice.
					markCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
					markErr = r.mark(markCtx, b)
					cancel()
					if markErr == nil {
						// Counted as the mark commits, not when the leader next looks.
						r.observe(b.results, b.dead)
					}
				}
				// After a failed mark no later batch is marked either (marks commit in claim
				// order, which the per-author release relies on); the leader reconnects.
				b.markErr = markErr
				done <- b
			}
			continue
		}
		err := s.wait.Wait()
		if s.bulk != nil {
			// Confirmed or failed, it no longer holds later rows back: a failed row is
			// published again later with a higher position.
			fl.release(s.bulk)
		} else if s.main {
			fl.mainDone()
		}
		now := time.Now()
		var pe *broker.SendError
		var failedAt map[int]error
		switch {
		case err == nil:
		case errors.As(err, &pe):
			failedAt = pe.Failed
		default:
			failedAt = make(map[int]error, len(s.owners))
			for i := range s.owners {
				failedAt[i] = err
			}
		}
		r.metrics.publishedMessages.Add(float64(len(s.owners) - len(failedAt)))
		r.metrics.publishErrors.Add(float64(len(failedAt)))
		for i, o := range s.owners {
			st := &b.states[o]
			ferr, failed := failedAt[i]
			switch {
			case !failed:
				st.confirmed++
				st.at = now
			case errors.Is(ferr, broker.ErrRefused):
				if st.refused == "" {
					st.refused = ferr.Error()
				}
			default:
				st.lost = true
				if b.err == nil {
					b.err = ferr
				}
				pl.mu.Lock()
				pl.brokerDown = true
				pl.mu.Unlock()
			}
		}
	}
}

func (r *Relay) mark(ctx context.Context, b *batch) error {
	pc, err := r.cfg.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("mark outbox rows: %w", err)
	}
	defer pc.Release()
	b.dead, err = markBatch(ctx, pc.Conn(), b.results, b.inflight, r.cfg.MaxAttempts)
	return err
}

// finish decides the outcome of every row of b (all its groups were waited for).
//
// Order per author: once a row of an author is not relayed, its later rows are released (even if
// confirmed) so they are published again after it — a follower may then see a later frame twice,
// never miss the earlier one's retry ordering. This covers later rows of the same batch and rows
// of batches claimed while b was in flight (see pipeline.blocked).
func (r *Relay) finish(pl *pipeline, b *batch) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for a, n := range pl.blocked {
		if n <= b.claimedAfter {
			delete(pl.blocked, a) // every later batch was claimed after that mark: the database orders them
		}
	}
	b.results = make([]result, len(b.rows))
	for i, st := range b.states {
		res := &b.results[i]
		res.row = b.rows[i]
		n, isBlocked := pl.blocked[res.row.author]
		switch {
		case isBlocked && b.claimedAfter < n:
			res.outcome = released
		case st.refused != "":
			res.outcome = refused
			res.err = st.refused
			res.retryIn = backoff(res.row.attempts, r.cfg.RetryBackoffMin, r.cfg.RetryBackoffMax)
		case st.complete && !st.lost && !st.unsent && st.confirmed == st.emitted:
			res.outcome = relayed
			res.confirmedAt = st.at
		default:
			res.outcome = released
		}
		if res.outcome != relayed {
			pl.blocked[res.row.author] = b.seq
		}
	}
}
