package outbox

import (
	"context"
	"errors"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/socialnet/social/adapters/amqp"
)

// rowState tracks one row while its messages are published.
type rowState struct {
	emitted   int  // messages handed to a group
	confirmed int  // messages the broker confirmed
	complete  bool // every page of followers was emitted
	refused   string
	lost      bool // a message was not confirmed for a reason that is not the row's fault
	at        time.Time
}

// group is the messages of one Publish call, with the row each belongs to.
type group struct {
	msgs   []*message.Message
	owners []int
}

// publishBatch publishes the rows in order and returns each row's outcome. The error is non-nil
// when the broker was unavailable (rows not confirmed are released, not counted as attempts) or
// a follower page could not be read; the caller backs off.
//
// Messages of a row are the pages of its author's followers; pages after the first are read
// while publishing (keyset), so a 100,000-follower post is never held whole. Publishing is in
// groups of PublishGroup messages pipelined on one channel, in row order, so one author's frames
// leave in event order. A batch stops taking rows once MaxBatchMessages messages were emitted.
func (r *Relay) publishBatch(ctx context.Context, rows []*row) ([]result, error) {
	states := make([]rowState, len(rows))
	results := make([]result, len(rows))
	for i := range rows {
		results[i] = result{row: rows[i], outcome: released}
	}
	authors := make([]string, 0, len(rows))
	seen := make(map[string]bool, len(rows))
	for _, rw := range rows {
		if !seen[rw.author] {
			seen[rw.author] = true
			authors = append(authors, rw.author)
		}
	}
	firsts, err := firstPages(ctx, r.cfg.Pool, authors, r.cfg.PageSize)
	if err != nil {
		return results, err
	}

	// The publish context survives cancellation of ctx: a group already sent is waited for
	// (bounded by PublishTimeout) so its rows can be marked instead of sent again. We check ctx
	// before each group instead.
	pubCtx := context.WithoutCancel(ctx)
	var stopErr error
	g := &group{}
	flush := func() {
		if len(g.msgs) == 0 {
			return
		}
		defer func() { g = &group{} }()
		if stopErr == nil && ctx.Err() != nil {
			stopErr = ctx.Err()
		}
		if stopErr != nil {
			for _, o := range g.owners {
				states[o].lost = true
			}
			return
		}
		err := r.cfg.Publisher.Publish(r.cfg.Exchange, g.msgs...)
		now := time.Now()
		var pe *amqp.PublishError
		failedAt := map[int]error{}
		switch {
		case err == nil:
		case errors.As(err, &pe):
			failedAt = pe.Failed
		default:
			for i := range g.msgs {
				failedAt[i] = err
			}
		}
		r.metrics.publishedMessages.Add(float64(len(g.msgs) - len(failedAt)))
		r.metrics.publishErrors.Add(float64(len(failedAt)))
		for i, o := range g.owners {
			ferr, failed := failedAt[i]
			switch {
			case !failed:
				states[o].confirmed++
				states[o].at = now
			case errors.Is(ferr, amqp.ErrNacked):
				if states[o].refused == "" {
					states[o].refused = ferr.Error()
				}
			default:
				states[o].lost = true
				if stopErr == nil {
					stopErr = ferr
				}
			}
		}
	}

	budget := r.cfg.MaxBatchMessages
rows:
	for i, rw := range rows {
		if stopErr != nil || budget <= 0 || ctx.Err() != nil {
			break
		}
		p, ok := firsts[rw.author]
		for ok {
			m := message.NewMessage(rw.eventID, rw.frame)
			m.Metadata = message.Metadata{amqp.MetadataRoutingKey: p.key}
			if p.cc != "" {
				m.Metadata[amqp.MetadataCC] = p.cc
			}
			m.SetContext(pubCtx)
			g.msgs = append(g.msgs, m)
			g.owners = append(g.owners, i)
			states[i].emitted++
			budget--
			if len(g.msgs) >= r.cfg.PublishGroup {
				flush()
				if stopErr != nil {
					break rows
				}
			}
			if !p.full {
				break
			}
			if p, err = nextPage(ctx, r.cfg.Pool, rw.author, p.last, r.cfg.PageSize); err != nil {
				stopErr = err
				break rows
			}
			ok = p.key != ""
		}
		states[i].complete = true
		if states[i].emitted == 0 {
			states[i].at = time.Now() // no followers: nothing to wait for
		}
	}
	flush()

	// Order per author: once a row of an author is not relayed, its later rows in this batch
	// are released too (even if confirmed) so they are published again after it — a follower
	// may then see a later frame twice, never miss the earlier one's retry ordering.
	blocked := map[string]bool{}
	for i, st := range states {
		res := &results[i]
		switch {
		case blocked[res.row.author]:
			res.outcome = released
		case st.refused != "":
			res.outcome = refused
			res.err = st.refused
			res.retryIn = backoff(res.row.attempts, r.cfg.RetryBackoffMin, r.cfg.RetryBackoffMax)
		case st.complete && !st.lost && st.confirmed == st.emitted:
			res.outcome = relayed
			res.confirmedAt = st.at
		default:
			res.outcome = released
		}
		if res.outcome != relayed {
			blocked[res.row.author] = true
		}
	}
	if stopErr != nil && ctx.Err() != nil {
		return results, nil // shutting down, not a broker failure
	}
	return results, stopErr
}
