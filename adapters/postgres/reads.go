package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultReadTimeout bounds each statement of an expensive read (the feed, the users one follows,
// a dialog page, a search): ample for a read the indexes serve, and short enough that a read
// which is not served so gives its pooled connection back well before REQUEST_TIMEOUT.
const DefaultReadTimeout = 2 * time.Second

// Option configures a service.
type Option func(*options)

type options struct {
	readTimeout time.Duration
}

// ReadTimeout sets the statement timeout of the service's expensive reads (DefaultReadTimeout
// without it; a duration ≤ 0 keeps the default).
func ReadTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.readTimeout = d
		}
	}
}

// reader runs a service's expensive reads on its pool.
type reader struct {
	pool    *pgxpool.Pool
	timeout time.Duration
}

func newReader(pool *pgxpool.Pool, opts []Option) reader {
	o := options{readTimeout: DefaultReadTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	return reader{pool: pool, timeout: o.readTimeout}
}

// read runs fn in a read-only transaction, in one snapshot (a read of several statements sees one
// state), whose statements PostgreSQL itself cancels after the timeout (SET LOCAL
// statement_timeout, sent with the BEGIN in one round trip). A statement that
// runs longer ends with SQLSTATE 57014, which translate makes a 503, and its connection goes back
// to the pool. The server enforces it, so the query stops even when the client that asked for it
// is stalled or gone; a context deadline alone stops it only when pgx's cancel request gets
// through. REQUEST_TIMEOUT still bounds the whole request.
func (r reader) read(ctx context.Context, fn func(pgx.Tx) error) error {
	begin := fmt.Sprintf("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = %d", max(1, r.timeout.Milliseconds()))
	return pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{BeginQuery: begin}, fn)
}
