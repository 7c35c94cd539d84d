package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/domain"
)

// baselines are what the same machine does without our code in the way, measured in the same run.
type baselines struct {
	SQL      *sqlBaseline  `json:"postgres,omitempty"`
	AMQP     *amqpBaseline `json:"rabbitmq,omitempty"`
	WS       *wsBaseline   `json:"websocket,omitempty"`
	Duration float64       `json:"duration_s"`
}

// sqlBaseline is the post transaction issued straight through pgx.
type sqlBaseline struct {
	Workers  int            `json:"workers"`
	TxPerSec float64        `json:"tx_per_s"`
	Latency  latencySummary `json:"latency"`
}

func runBaselines(ctx context.Context, cfg e2eConfig, sys *system, w *world, rep *e2eReport) error {
	b := &baselines{Duration: cfg.BaselineFor.Seconds()}
	rep.Baselines = b
	cfg.progress("baseline: PostgreSQL, the post transaction through pgx, %d workers", cfg.Concurrency)
	sb, err := sqlPostBaseline(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres baseline: %w", err)
	}
	b.SQL = sb
	cfg.progress("baseline: %.0f tx/s, p50/p99 %.1f/%.1f ms", sb.TxPerSec, sb.Latency.P50, sb.Latency.P99)

	cfg.progress("baseline: RabbitMQ, one message per follower, pipelined confirms, one queue")
	ab, err := amqpFollowerBaseline(ctx, cfg)
	if err != nil {
		return fmt.Errorf("rabbitmq baseline: %w", err)
	}
	b.AMQP = ab
	cfg.progress("baseline: %.0f messages/s", ab.MsgsPerSec)

	n := max(1, cfg.Connected*cfg.Tabs)
	cfg.progress("baseline: bare coder/websocket server pushing a pre-encoded frame to %d sockets", n)
	wb, err := bareWSBaseline(ctx, n, cfg.BaselineFor)
	if err != nil {
		return fmt.Errorf("websocket baseline: %w", err)
	}
	b.WS = wb
	cfg.progress("baseline: %.0f frames/s", wb.FramesPerSec)
	return nil
}

// sqlPostBaseline runs PostService.Create's three statements (event, posts row, outbox row; one
// batch = one implicit transaction, synchronous commit) from `workers` goroutines on a pool of
// the same size, against a scratch database with the same schema (the outbox trigger included),
// so the system's dispatcher does not see these rows.
func sqlPostBaseline(ctx context.Context, cfg e2eConfig) (*sqlBaseline, error) {
	name := "socialbench_sql_" + randomHex(6)
	admin, err := pgx.Connect(ctx, cfg.AdminURL)
	if err != nil {
		return nil, err
	}
	defer admin.Close(context.Background())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, err
	}
	defer func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	}()
	u, _ := url.Parse(cfg.AdminURL)
	u.Path = "/" + name
	pool, err := postgres.Open(ctx, u.String(), postgres.PoolConfig{MaxConns: int32(cfg.Concurrency)})
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
	return &sqlBaseline{Workers: cfg.Concurrency, TxPerSec: float64(len(lat)) / time.Since(start).Seconds(), Latency: summarize(lat)}, nil
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
