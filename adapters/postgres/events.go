package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/socialnet/social/domain"
)

// newEvent describes one event to append.
type newEvent struct {
	ID          uuid.UUID
	AggregateID string
	Version     int
	Type        string
	Payload     any
	At          time.Time
}

func makeEvent(aggregateID string, version int, typ string, payload any, at time.Time) newEvent {
	return newEvent{ID: uuid.Must(uuid.NewV7()), AggregateID: aggregateID, Version: version, Type: typ, Payload: payload, At: at}
}

// queueAppend adds the INSERT of e to b. A clash on (aggregate_id, aggregate_version) means a
// concurrent writer got there first; translate turns it into ECONFLICT.
func queueAppend(b *pgx.Batch, e newEvent) error {
	payload, err := json.Marshal(e.Payload)
	if err != nil {
		return fmt.Errorf("encode %s payload: %w", e.Type, err)
	}
	b.Queue(`INSERT INTO events (id, aggregate_id, aggregate_version, type, payload, created_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, e.ID, e.AggregateID, e.Version, e.Type, payload, e.At)
	return nil
}

// queueOutbox adds the outbox row of a relayed event to b; it must share the event's transaction.
// The row's author and recipients are the domain's route of the event (domain.OutboxRoute): the
// one recipient rule per event type, which the relay applies to the same payload.
func queueOutbox(b *pgx.Batch, e newEvent) error {
	r, err := domain.OutboxRoute(e.Type, e.Payload)
	if err != nil {
		return err
	}
	if r.Recipients == nil {
		b.Queue(`INSERT INTO outbox (event_id, author_user_id, created_at) VALUES ($1, $2, $3)`, e.ID, r.Author, e.At)
		return nil
	}
	b.Queue(`INSERT INTO outbox (event_id, author_user_id, recipients, created_at) VALUES ($1, $2, $3, $4)`,
		e.ID, r.Author, r.Recipients, e.At)
	return nil
}

// sendBatch runs b and returns the first error, calling the callbacks queued with the statements
// (QueuedQuery.Exec). On a pool, pgx sends the whole batch with one Sync, so PostgreSQL runs it as
// one implicit transaction: all statements commit or none do. Inside an explicit pgx.Tx it joins
// that transaction.
func sendBatch(ctx context.Context, q interface {
	SendBatch(context.Context, *pgx.Batch) pgx.BatchResults
}, b *pgx.Batch) error {
	return q.SendBatch(ctx, b).Close()
}
