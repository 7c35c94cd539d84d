package main

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// outboxLag polls a backlog every 100 ms: pending rows and the age of the oldest.
type outboxLag struct {
	mu     sync.Mutex
	points []lagPoint
	last   int64
	cancel context.CancelFunc
	done   chan struct{}
}

type lagPoint struct {
	at      time.Time
	pending int64
	ageMs   float64
}

// lagStats is the backlog over a phase.
type lagStats struct {
	MaxPending int64   `json:"max_pending"`
	MaxAgeMs   float64 `json:"max_age_ms"`
}

// outboxLagQuery reads our outbox's backlog: pending rows and the age of the oldest (ms).
const outboxLagQuery = `SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)) * 1000, 0)::float8
	FROM outbox WHERE status = 'pending'`

// startLagQuery polls query (a count and an age in ms) on dbURL every 100 ms until stop.
func startLagQuery(ctx context.Context, dbURL, query string) *outboxLag {
	l := &outboxLag{done: make(chan struct{}), last: -1}
	ctx, l.cancel = context.WithCancel(ctx)
	go func() {
		defer close(l.done)
		var conn *pgx.Conn
		defer func() {
			if conn != nil {
				conn.Close(context.Background())
			}
		}()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if conn == nil {
				conn, _ = pgx.Connect(ctx, dbURL)
			}
			if conn != nil {
				var p lagPoint
				err := conn.QueryRow(ctx, query).Scan(&p.pending, &p.ageMs)
				p.at = time.Now()
				if err == nil {
					l.mu.Lock()
					l.points, l.last = append(l.points, p), p.pending
					l.mu.Unlock()
				} else {
					conn.Close(context.Background())
					conn = nil
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return l
}

// pending is the latest pending count (-1 before the first poll).
func (l *outboxLag) pending() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

func (l *outboxLag) window(from, to time.Time) lagStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	var s lagStats
	for _, p := range l.points {
		if !p.at.Before(from) && !p.at.After(to) {
			s.MaxPending = max(s.MaxPending, p.pending)
			s.MaxAgeMs = max(s.MaxAgeMs, p.ageMs)
		}
	}
	return s
}

func (l *outboxLag) stop() {
	l.cancel()
	<-l.done
}
