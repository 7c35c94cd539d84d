package outbox

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DeadRowsShown caps Status.DeadRows: the newest dead rows, enough to see what is failing without
// dumping a table that a broken broker filled.
const DeadRowsShown = 20

// Status is the outbox backlog as `social outbox status --json` prints it. The JSON names are a
// stable interface (docs/operations.md): add fields, never rename them.
type Status struct {
	// Pending counts rows waiting for the relay, replays included.
	Pending int64 `json:"pending"`
	// PendingReplays counts the pending rows that a replay re-enqueued (keep_position = true).
	PendingReplays int64 `json:"pending_replays"`
	// OldestPendingAgeSeconds is how long the oldest pending row that is not a replay has waited
	// since its event was committed: the lag of live traffic, 0 when none waits. Replayed rows are
	// left out because their events are old by design (they would make every replay look like an
	// outage); rows moved back by retry-dead are counted, since their followers really are late.
	OldestPendingAgeSeconds float64 `json:"oldest_pending_age_seconds"`
	// Dead counts rows parked after too many failed publishes.
	Dead int64 `json:"dead"`
	// DeadRows lists the newest dead rows (at most DeadRowsShown), newest first.
	DeadRows []DeadRow `json:"dead_rows"`
	// LastRelayedPosition is the highest position among relayed rows, 0 when none.
	LastRelayedPosition int64 `json:"last_relayed_position"`
	// RelayedLastMinute counts rows whose relay completed (broker confirmed) in the last 60 s.
	RelayedLastMinute int64 `json:"relayed_last_minute"`
	// RelayRatePerSecond is RelayedLastMinute / 60.
	RelayRatePerSecond float64 `json:"relay_rate_per_second"`
	// Broker is filled by the command, which connects to the broker itself (ReadStatus reads the
	// database only); omitted when nobody asked.
	Broker *BrokerStatus `json:"broker,omitempty"`
}

// DeadRow is one parked outbox row.
type DeadRow struct {
	ID        int64     `json:"id"`
	EventID   string    `json:"event_id"`
	EventType string    `json:"event_type"`
	Author    string    `json:"author"`
	Attempts  int       `json:"attempts"`
	LastError string    `json:"last_error"`
	CreatedAt time.Time `json:"created_at"`
}

// statusCountsSQL reads the figures the gauges also need. Each sub-select is shaped to use an index
// (outbox_pending, outbox_relayed_at, the position unique index), so a scrape stays cheap while
// millions of relayed rows are kept. Dead rows have no index of their own: the count is a scan,
// acceptable because status is an operator command and the collector has a short timeout.
const statusCountsSQL = `SELECT
	(SELECT count(*) FROM outbox WHERE status = 'pending'),
	(SELECT count(*) FROM outbox WHERE status = 'pending' AND keep_position),
	coalesce((SELECT extract(epoch FROM now() - min(created_at))::float8
		FROM outbox WHERE status = 'pending' AND NOT keep_position), 0),
	(SELECT count(*) FROM outbox WHERE status = 'dead'),
	coalesce((SELECT position FROM outbox WHERE status = 'relayed' AND position IS NOT NULL
		ORDER BY position DESC LIMIT 1), 0),
	(SELECT count(*) FROM outbox WHERE status = 'relayed' AND relayed_at > now() - interval '1 minute')`

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func readCounts(ctx context.Context, q querier) (Status, error) {
	var s Status
	err := q.QueryRow(ctx, statusCountsSQL).Scan(&s.Pending, &s.PendingReplays, &s.OldestPendingAgeSeconds,
		&s.Dead, &s.LastRelayedPosition, &s.RelayedLastMinute)
	if err != nil {
		return Status{}, fmt.Errorf("read outbox status: %w", err)
	}
	if s.OldestPendingAgeSeconds < 0 { // a row stamped by a client clock slightly ahead of the server's
		s.OldestPendingAgeSeconds = 0
	}
	s.RelayRatePerSecond = float64(s.RelayedLastMinute) / 60
	return s, nil
}

// ReadStatus returns the outbox figures and the newest dead rows. Both reads run in one
// REPEATABLE READ, read-only transaction so the list agrees with the count.
func ReadStatus(ctx context.Context, pool *pgxpool.Pool) (Status, error) {
	var s Status
	err := pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if s, err = readCounts(ctx, tx); err != nil {
			return err
		}
		s.DeadRows, err = readDeadRows(ctx, tx, DeadRowsShown)
		return err
	})
	if err != nil {
		return Status{}, err
	}
	return s, nil
}

func readDeadRows(ctx context.Context, q querier, limit int) ([]DeadRow, error) {
	rows, err := q.Query(ctx, `SELECT o.id, o.event_id, e.type, o.author_user_id, o.attempts, coalesce(o.last_error, ''), o.created_at
		FROM outbox o JOIN events e ON e.id = o.event_id
		WHERE o.status = 'dead' ORDER BY o.id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("read dead outbox rows: %w", err)
	}
	dead, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeadRow, error) {
		var d DeadRow
		var eventID, author uuid.UUID
		err := r.Scan(&d.ID, &eventID, &d.EventType, &author, &d.Attempts, &d.LastError, &d.CreatedAt)
		d.EventID, d.Author = eventID.String(), author.String()
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("read dead outbox rows: %w", err)
	}
	if dead == nil {
		dead = []DeadRow{} // JSON [] rather than null: scripts iterate it
	}
	return dead, nil
}
