package outbox

import (
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/socialnet/social/outbox/broker"
)

// Config configures a Relay. Zero values take the defaults named on each field.
type Config struct {
	// Pool serves follower reads and row updates. The relay also opens one dedicated connection
	// with the pool's settings: it holds the leader lock, LISTENs and claims.
	Pool *pgxpool.Pool
	// Publisher sends the messages (the relay's port, outbox/broker; adapters/amqp.Publisher
	// implements it), each follower's on that follower's lane. Its confirms tell which messages
	// the broker refused (an attempt of the row) and which it did not answer (the broker is
	// unavailable: no attempt); its own progress timeout must bound every wait.
	Publisher broker.Publisher
	// BulkPublisher, when set, publishes the pages after the first of big fan-outs, and the rows
	// deferred behind them, so that a big fan-out's backlog in the broker (and in the TCP
	// connection) never delays other rows: give it its own connection. Default: Publisher.
	BulkPublisher broker.Publisher
	// Exchange is the topic passed to Publisher: the feed exchange (default "social.feed").
	Exchange string

	// BatchSize is how many rows one claim takes (default 500).
	BatchSize int
	// PageSize is the number of followers per message, routing key + CC (default and at most
	// 1,000: about 40 KB of CC header, well under the broker's 128 KB frame). Followers are read
	// 1,000 per query whatever it is. On RabbitMQ < 3.11 a message with CC costs the broker a scan
	// of every binding of the exchange per key, a single-key message one lookup: with many
	// bindings (more than a few thousand online users) PageSize 1 relays a big fan-out faster.
	PageSize int
	// InlineFollowers is how many followers of a row go out at once, on Publisher, before its
	// pages continue on BulkPublisher (default 10,000, at least 1,000). Ten messages, ~25 ms of the
	// broker's routing on a small machine, are what a big fan-out may put ahead of the next post;
	// below that a row is not worth a continuation (an author with 1,010 followers would pay a
	// page read and a bulk confirm round trip per post, and its batch's mark would wait for them).
	InlineFollowers int
	// PublishGroup is how many messages go to one Publisher.Publish call, i.e. are in flight
	// before the relay waits for their confirms (default 256).
	PublishGroup int
	// MaxBatchMessages bounds one batch's inline follower deliveries to MaxBatchMessages × 1,000
	// (default 2,000: 2 million deliveries, 2,000 messages of 1,000 followers), whatever the
	// message shape. Rows after the bound are released unpublished and taken by the next claim, so
	// a run of huge fan-outs is committed (marked relayed) step by step.
	MaxBatchMessages int

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

	// Logger; default slog.Default().
	Logger *slog.Logger
	// Registerer receives the relay metrics; nil registers nothing.
	Registerer prometheus.Registerer
}

// DefaultLockKey is the advisory lock key of the leader ("social" in ASCII).
const DefaultLockKey int64 = 0x736f6369616c

func (c *Config) setDefaults() {
	if c.Exchange == "" {
		c.Exchange = "social.feed"
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	if c.PageSize == 0 {
		c.PageSize = 1000
	}
	if c.InlineFollowers == 0 {
		c.InlineFollowers = 10 * readPageSize
	}
	if c.PublishGroup == 0 {
		c.PublishGroup = 256
	}
	if c.MaxBatchMessages == 0 {
		c.MaxBatchMessages = 2000
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
	if c.BatchSize < 1 || c.PublishGroup < 1 || c.MaxBatchMessages < 1 || c.MaxAttempts < 1 {
		errs = append(errs, errors.New("outbox relay: BatchSize, PublishGroup, MaxBatchMessages and MaxAttempts must be positive"))
	}
	if c.InlineFollowers < readPageSize {
		errs = append(errs, errors.New("outbox relay: InlineFollowers must be at least 1000 (one page)"))
	}
	if c.PageSize < 1 || c.PageSize > 1000 {
		errs = append(errs, errors.New("outbox relay: PageSize must be 1..1000 (CC header size)"))
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
