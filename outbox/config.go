package outbox

import (
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ThreeDotsLabs/watermill/message"
)

// Config configures a Relay. Zero values take the defaults named on each field.
type Config struct {
	// Pool gives the settings of the relay's one dedicated connection, which holds the leader
	// lock, LISTENs, claims, routes and marks.
	Pool *pgxpool.Pool
	// Publisher sends each instance's feed messages with topic = the instance's id
	// (adapters/amqp.Publisher: the direct exchange, routing key = topic). Publish must return
	// only once the broker confirmed every message, and must bound its own wait.
	Publisher message.Publisher
	// Refused says whether a Publish error means the broker refused the messages (a nack): their
	// rows count an attempt, are retried with backoff and end dead after MaxAttempts. Any other
	// error is the broker being unavailable: the rows are released with no attempt counted and
	// the leader backs off. Default: no error is a refusal.
	Refused func(error) bool

	// BatchSize is how many rows one claim takes (default 500).
	BatchSize int

	// PollInterval is how often an idle leader looks for rows when no NOTIFY arrives (a lost
	// notification, rows due for retry). Default 1s. An idle relay sleeps in between.
	PollInterval time.Duration
	// LeaderRetryInterval is how often a relay that is not the leader tries to become it
	// (default 2s): the takeover delay after a leader dies.
	LeaderRetryInterval time.Duration
	// LockKey is the advisory lock key that elects the leader (default 0x736f6369616c: "social").
	LockKey int64

	// MaxAttempts is how many times a row may be refused by the broker before it is parked as
	// 'dead' (default 10). Broker or database unavailability does not count as an attempt.
	MaxAttempts int
	// RetryBackoffMin and RetryBackoffMax bound the wait before a refused row is retried
	// (doubling per attempt). Defaults 1s and 5m.
	RetryBackoffMin, RetryBackoffMax time.Duration
	// ErrorBackoffMin and ErrorBackoffMax bound the pause after the broker or the database was
	// unavailable (doubling while it lasts). Defaults 100ms and 2s: a failed attempt against a
	// down broker costs next to nothing, and a low cap drains the backlog soon after it returns.
	ErrorBackoffMin, ErrorBackoffMax time.Duration

	// planCacheMode overrides the leader session's plan_cache_mode (leaderConfig), for tests that
	// run the relay's statements under both plans.
	planCacheMode string

	// Logger; default slog.Default().
	Logger *slog.Logger
	// Registerer receives the relay metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// DefaultLockKey is the advisory lock key of the leader ("social" in ASCII).
const DefaultLockKey int64 = 0x736f6369616c

func (c *Config) setDefaults() {
	if c.Refused == nil {
		c.Refused = func(error) bool { return false }
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.LeaderRetryInterval == 0 {
		c.LeaderRetryInterval = 2 * time.Second
	}
	if c.LockKey == 0 {
		c.LockKey = DefaultLockKey
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 10
	}
	if c.RetryBackoffMin == 0 {
		c.RetryBackoffMin = time.Second
	}
	if c.RetryBackoffMax == 0 {
		c.RetryBackoffMax = 5 * time.Minute
	}
	if c.ErrorBackoffMin == 0 {
		c.ErrorBackoffMin = 100 * time.Millisecond
	}
	if c.ErrorBackoffMax == 0 {
		c.ErrorBackoffMax = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every invalid field at once.
func (c Config) Validate() error {
	var errs []error
	if c.Pool == nil {
		errs = append(errs, errors.New("outbox relay: Pool is required"))
	}
	if c.Publisher == nil {
		errs = append(errs, errors.New("outbox relay: Publisher is required"))
	}
	if c.BatchSize < 1 || c.MaxAttempts < 1 {
		errs = append(errs, errors.New("outbox relay: BatchSize and MaxAttempts must be positive"))
	}
	if c.PollInterval <= 0 || c.LeaderRetryInterval <= 0 {
		errs = append(errs, errors.New("outbox relay: PollInterval and LeaderRetryInterval must be positive"))
	}
	if c.RetryBackoffMin <= 0 || c.RetryBackoffMax < c.RetryBackoffMin || c.ErrorBackoffMin <= 0 || c.ErrorBackoffMax < c.ErrorBackoffMin {
		errs = append(errs, errors.New("outbox relay: backoffs must be positive with max >= min"))
	}
	return errors.Join(errs...)
}

// backoff returns min·2^n capped at max.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo << min(max(n, 0), 20)
	if d <= 0 || d > hi {
		return hi
	}
	return d
}
