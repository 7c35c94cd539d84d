package outbox

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// retryDeadBatch bounds each RetryDead transaction: a broker outage can park many rows.
const retryDeadBatch = 1000

// RetryDead moves dead outbox rows back to 'pending' with attempts = 0, so the dispatcher tries
// them again from scratch; with no ids it moves every dead row. It returns how many rows moved.
// Ids that are not dead (unknown, pending, relayed) are ignored: running it twice is harmless.
// The position is left alone: a dead row normally has none (the relay cleared it on failure) and
// gets a fresh one when relayed; a dead replay keeps its original one (keep_position).
// last_error is kept until the next failure overwrites it, for whoever investigates.
func RetryDead(ctx context.Context, pool *pgxpool.Pool, ids ...int64) (int64, error) {
	var moved int64
	var after int64 // rows are taken in id order, batch by batch
	for {
		var n, last int64
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			err := tx.QueryRow(ctx, `WITH batch AS (
					SELECT id FROM outbox
					WHERE status = 'dead' AND id > $1 AND ($2::bigint[] IS NULL OR id = ANY($2))
					ORDER BY id LIMIT $3
					FOR UPDATE),
				moved AS (
					UPDATE outbox o SET status = 'pending', attempts = 0, next_attempt_at = now()
					FROM batch WHERE o.id = batch.id
					RETURNING o.id)
				SELECT count(*), coalesce(max(id), 0) FROM moved`, after, nilIfEmpty(ids), retryDeadBatch).Scan(&n, &last)
			if err != nil || n == 0 {
				return err
			}
			_, err = tx.Exec(ctx, `SELECT pg_notify($1, '')`, NotifyChannel) // wake the dispatcher now
			return err
		})
		if err != nil {
			return moved, fmt.Errorf("retry dead outbox rows: %w", err)
		}
		moved += n
		if n < retryDeadBatch {
			return moved, nil
		}
		after = last
	}
}

func nilIfEmpty(ids []int64) any {
	if len(ids) == 0 {
		return nil
	}
	return ids
}
