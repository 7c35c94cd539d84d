// Package pgtest gives each test a fresh, migrated PostgreSQL database on the local server and
// drops it when the test ends, so tests run in parallel and leave nothing behind.
package pgtest

import (
	"context"

	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/adapters/postgres"
)

// AdminURL is the maintenance database used to create and drop test databases. TEST_DATABASE_URL
// overrides it (tests are the one place that reads the environment directly: they have no main).
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// DB is a fresh test database.
type DB struct {
	Name string
	URL  string
	Pool *pgxpool.Pool
}

// New creates and migrates a database named after the test, and drops it in t.Cleanup.
func New(tb testing.TB) *DB {
	tb.Helper()
	db := NewEmpty(tb)
	if _, err := postgres.Migrate(context.Background(), db.Pool); err != nil {
		tb.Fatalf("migrate: %v", err)
	}
	return db
}

// NewEmpty creates a database without applying migrations.
func NewEmpty(tb testing.TB) *DB {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		tb.Fatalf("connect to %s: %v (is PostgreSQL running?)", redact(AdminURL()), err)
	}
	defer admin.Close(ctx)

	name := "social_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	u, _ := url.Parse(AdminURL())
	u.Path = "/" + name
	db := &DB{Name: name, URL: u.String()}
	tb.Cleanup(func() {
		if db.Pool != nil {
			db.Pool.Close()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		admin, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			tb.Errorf("drop %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			tb.Errorf("drop %s: %v", name, err)
		}
	})
	db.Pool, err = postgres.Open(ctx, db.URL, postgres.PoolConfig{MaxConns: 16})
	if err != nil {
		tb.Fatalf("open %s: %v", name, err)
	}
	return db
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable url)"
	}
	return u.Redacted()
}

// Count returns the result of SELECT count(*) FROM table [WHERE ...].
func (db *DB) Count(tb testing.TB, table string, where ...string) int {
	tb.Helper()
	q := "SELECT count(*) FROM " + table
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	var n int
	if err := db.Pool.QueryRow(context.Background(), q).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", q, err)
	}
	return n
}

// Exec runs SQL or fails the test.
func (db *DB) Exec(tb testing.TB, sql string, args ...any) {
	tb.Helper()
	if _, err := db.Pool.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}
