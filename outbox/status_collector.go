package outbox

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// StatusCollector exposes the outbox backlog as gauges computed at scrape time, so every process
// that registers it reports the same database-wide truth (the relay's own counters only know what
// that process did). One scrape costs one query of indexed sub-selects, bounded by a timeout.
type StatusCollector struct {
	pool    *pgxpool.Pool
	timeout time.Duration
	log     *slog.Logger

	pending, replays, oldest, dead, up *prometheus.Desc
}

var _ prometheus.Collector = (*StatusCollector)(nil)

// NewStatusCollector returns a collector of social_outbox_pending_rows,
// social_outbox_pending_replay_rows, social_outbox_oldest_pending_age_seconds,
// social_outbox_dead_rows and social_outbox_status_up. timeout bounds the query of each scrape
// (0 means 2 s); log may be nil.
func NewStatusCollector(pool *pgxpool.Pool, timeout time.Duration, log *slog.Logger) *StatusCollector {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &StatusCollector{
		pool: pool, timeout: timeout, log: log,
		pending: prometheus.NewDesc("social_outbox_pending_rows",
			"Outbox rows waiting for the relay (replays included).", nil, nil),
		replays: prometheus.NewDesc("social_outbox_pending_replay_rows",
			"Pending outbox rows re-enqueued by `social outbox replay`.", nil, nil),
		oldest: prometheus.NewDesc("social_outbox_oldest_pending_age_seconds",
			"Age of the oldest pending outbox row that is not a replay (0 when none waits).", nil, nil),
		dead: prometheus.NewDesc("social_outbox_dead_rows",
			"Outbox rows parked after too many failed publishes.", nil, nil),
		up: prometheus.NewDesc("social_outbox_status_up",
			"1 if the last scrape could read the outbox figures from PostgreSQL, else 0.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *StatusCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.replays
	ch <- c.oldest
	ch <- c.dead
	ch <- c.up
}

// Collect implements prometheus.Collector. When the database does not answer within the timeout
// the backlog gauges are left out (a stale or zero value would read as "all is well") and
// social_outbox_status_up is 0; the rest of the scrape still succeeds.
func (c *StatusCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	s, err := readCounts(ctx, c.pool)
	if err != nil {
		c.log.Warn("outbox status for metrics", slog.Any("error", err))
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(s.Pending))
	ch <- prometheus.MustNewConstMetric(c.replays, prometheus.GaugeValue, float64(s.PendingReplays))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, s.OldestPendingAgeSeconds)
	ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(s.Dead))
}
