package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/cmd/socialbench/internal/bench"
	"github.com/socialnet/social/domain"
)

// sqlBaseline is the post transaction issued straight through pgx: what PostgreSQL does without
// our code in the way, measured in the same run.
type sqlBaseline struct {
	Workers  int           `json:"workers"`
	TxPerSec float64       `json:"tx_per_s"`
	Latency  bench.Summary `json:"latency"`
}

// sqlPostBaseline runs PostService.Create's three statements (event, posts row, outbox row; one
// batch = one implicit transaction, synchronous commit) from `workers` goroutines on a pool of
// the same size, against a scratch database with the same schema (the outbox trigger included),
// so the system's dispatcher does not see these rows.
func sqlPostBaseline(ctx context.Context, cfg e2eConfig) (*sqlBaseline, error) {
	name, dbURL, err := bench.CreateDatabase(ctx, cfg.System.AdminURL)
	if err != nil {
		return nil, err
	}
	defer bench.DropDatabase(cfg.System.AdminURL, name)
	pool, err := postgres.Open(ctx, dbURL, postgres.PoolConfig{MaxConns: int32(cfg.Concurrency)})
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if _, err := postgres.Migrate(ctx, pool); err != nil {
		return nil, err
	}
	authors := make([]string, cfg.Concurrency)
	for i := range authors {
		authors[i] = uuid.Must(uuid.NewV7()).String()
		if _, err := pool.Exec(ctx, `INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version)
			VALUES ($1, 'Base', 'Line', '1990-01-01', '', '', 'x', 1)`, authors[i]); err != nil {
			return nil, err
		}
	}
	// Warm the pool so connection set-up is not measured.
	if err := warmPool(ctx, pool, cfg.Concurrency); err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var lat []float64
	start := time.Now()
	end := start.Add(cfg.BaselineFor)
	var wg sync.WaitGroup
	var firstErr error
	for i := range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []float64
			for n := 0; ctx.Err() == nil && time.Now().Before(end); n++ {
				t := time.Now()
				if err := insertPostSQL(ctx, pool, authors[i], fmt.Sprintf("baseline post %d/%d", i, n)); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				mine = append(mine, float64(time.Since(t))/1e6)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return &sqlBaseline{Workers: cfg.Concurrency, TxPerSec: float64(len(lat)) / time.Since(start).Seconds(), Latency: bench.Summarize(lat)}, nil
}

// insertPostSQL is the SQL of postgres.PostService.Create, statement for statement.
func insertPostSQL(ctx context.Context, pool *pgxpool.Pool, author, text string) error {
	id := uuid.Must(uuid.NewV7())
	eventID := uuid.Must(uuid.NewV7())
	at := time.Now().UTC()
	payload, err := json.Marshal(domain.PostChanged{PostID: id.String(), AuthorUserID: author, Text: text})
	if err != nil {
		return err
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO events (id, aggregate_id, aggregate_version, type, payload, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, eventID, id, 1, domain.EventPostCreated, payload, at)
	b.Queue(`INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version) VALUES ($1, $2, $3, $4, $4, 1)`,
		id, author, text, at)
	b.Queue(`INSERT INTO outbox (event_id, author_user_id, created_at) VALUES ($1, $2, $3)`, eventID, author, at)
	return pool.SendBatch(ctx, b).Close()
}

func warmPool(ctx context.Context, pool *pgxpool.Pool, n int) error {
	var conns []*pgxpool.Conn
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for range n {
		c, err := pool.Acquire(ctx)
		if err != nil {
			return err
		}
		conns = append(conns, c)
	}
	return nil
}
