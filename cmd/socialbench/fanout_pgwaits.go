package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgWaits samples pg_stat_activity of the bench database every few milliseconds: which
// statements are running and what they wait for (wait_event, or on CPU). Where a post's time
// goes inside PostgreSQL, for the tail at a steady rate: the post transaction's commit, the
// relay's claim and mark, the follower query.
type pgWaits struct {
	mu     sync.Mutex
	counts map[string]int
	n      int
	cancel context.CancelFunc
	done   chan struct{}
}

func startPGWaits(ctx context.Context, adminURL, db string, every time.Duration) (*pgWaits, error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	w := &pgWaits{counts: map[string]int{}, done: make(chan struct{})}
	ctx, w.cancel = context.WithCancel(ctx)
	go func() {
		defer close(w.done)
		defer conn.Close(context.Background())
		t := time.NewTicker(every)
		defer t.Stop()
		for ctx.Err() == nil {
			rows, err := conn.Query(ctx, `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), query
				FROM pg_stat_activity WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()`, db)
			if err == nil {
				var keys []string
				for rows.Next() {
					var wait, q string
					if rows.Scan(&wait, &q) == nil {
						keys = append(keys, statementKind(q)+" · "+wait)
					}
				}
				rows.Close()
				w.mu.Lock()
				w.n++
				for _, k := range keys {
					w.counts[k]++
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-t.C:
			}
		}
	}()
	return w, nil
}

// statementKind names the statements of the post path.
func statementKind(q string) string {
	q = strings.ToLower(q)
	switch {
	case strings.Contains(q, "insert into outbox_inflight"):
		return "relay claim"
	case strings.Contains(q, "delete from outbox_inflight"):
		return "relay mark"
	case strings.Contains(q, "from friendships"):
		return "follower page"
	case strings.Contains(q, "insert into events") || strings.Contains(q, "insert into posts") || strings.Contains(q, "insert into outbox"):
		return "post transaction"
	case strings.HasPrefix(strings.TrimSpace(q), "commit"):
		return "COMMIT"
	case strings.Contains(q, "centrifugo_outbox"):
		return "centrifugo consumer"
	case strings.Contains(q, "pg_advisory"):
		return "advisory lock"
	}
	return strings.Join(strings.Fields(q), " ")[:min(40, len(strings.Join(strings.Fields(q), " ")))]
}

// top returns the most frequent (statement · wait) pairs with the share of samples each was seen in.
func (w *pgWaits) top(n int) []pgWait {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []pgWait
	for k, c := range w.counts {
		out = append(out, pgWait{What: k, Samples: c, Share: float64(c) / float64(max(1, w.n))})
	}
	slices.SortFunc(out, func(a, b pgWait) int { return b.Samples - a.Samples })
	return out[:min(n, len(out))]
}

func (w *pgWaits) stop() {
	w.cancel()
	<-w.done
}

// pgWait is one (statement · wait event) pair: in how many samples some backend was in it.
type pgWait struct {
	What    string  `json:"what"`
	Samples int     `json:"samples"`
	Share   float64 `json:"share_of_samples"`
}

func formatWaits(ws []pgWait) string {
	var b strings.Builder
	for _, w := range ws {
		fmt.Fprintf(&b, "  %5.1f%%  %s\n", 100*w.Share, w.What)
	}
	return b.String()
}
