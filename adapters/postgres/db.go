// Package postgres implements the domain services on PostgreSQL: an append-only event store whose
// every append updates the read models (users, friendships, posts) and, for post events, writes the
// outbox row, all in one transaction.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolConfig sizes the connection pool.
type PoolConfig struct {
	// MaxConns bounds the pool. About 16 commits faster on a small machine than a large pool,
	// because PostgreSQL group-commits the WAL flushes of concurrent transactions.
	MaxConns int32
	// ConnectTimeout bounds each new connection attempt so a dead server fails fast (503).
	ConnectTimeout time.Duration
}

// Open connects a pool and checks that the server answers.
func Open(ctx context.Context, url string, pc PoolConfig) (*pgxpool.Pool, error) {
	pool, err := NewPool(ctx, url, pc)
	if err != nil {
		return nil, err
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		if pgErr := (*pgconn.PgError)(nil); errors.As(err, &pgErr) && pgErr.Code == "3D000" {
			return nil, fmt.Errorf("connect to database: %w (run 'social migrate' to create it)", err)
		}
		return nil, fmt.Errorf("connect to database: %w", err)
	}
	return pool, nil
}

// NewPool returns a pool that connects lazily: a process keeps running while the database is
// down and recovers without a restart once it is back.
func NewPool(ctx context.Context, url string, pc PoolConfig) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if pc.MaxConns > 0 {
		cfg.MaxConns = pc.MaxConns
	}
	if pc.ConnectTimeout > 0 {
		cfg.ConnConfig.ConnectTimeout = pc.ConnectTimeout
	}
	// Broken connections are found on use; a short health period also drops them while idle.
	cfg.HealthCheckPeriod = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	return pool, nil
}
