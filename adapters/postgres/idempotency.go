package postgres

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/domain"
)

// createOnceSQL is a keyed post in one statement: every insert reads from the key's insert, so
// when the key is already held (by a row younger than the window) nothing at all is inserted, and
// the statement still succeeds. A row older than the window is taken over. Two calls with one key
// in one shared transaction, or in two concurrent ones (the second waits on the first's key row),
// make one post. The events, posts and outbox columns are those of Create's three statements.
const createOnceSQL = `WITH k AS (
		INSERT INTO post_idempotency_keys AS k (user_id, key, request_hash, post_id, created_at)
		VALUES ($1::uuid, $2::text, $3::bytea, $4::uuid, $5::timestamptz)
		ON CONFLICT (user_id, key) DO UPDATE
			SET request_hash = EXCLUDED.request_hash, post_id = EXCLUDED.post_id, created_at = EXCLUDED.created_at
			WHERE k.created_at <= EXCLUDED.created_at - $6::interval
		RETURNING post_id
	), e AS (
		INSERT INTO events (id, aggregate_id, aggregate_version, type, payload, created_at)
		SELECT $7::uuid, post_id, 1, $8::text, $9::jsonb, $5 FROM k
	), p AS (
		INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version)
		SELECT post_id, $1, $10::text, $5, $5, 1 FROM k
	)
	INSERT INTO outbox (event_id, author_user_id, created_at) SELECT $7, $1, $5 FROM k`

// queueCreateOnce adds the keyed create of post p (event e) to b; *created is set, when the
// batch runs, to whether the statement inserted the post (false: the key was already held).
func queueCreateOnce(b *pgx.Batch, e newEvent, p domain.Post, key string, created *bool) error {
	payload, err := json.Marshal(e.Payload)
	if err != nil {
		return fmt.Errorf("encode %s payload: %w", e.Type, err)
	}
	hash := sha256.Sum256([]byte(p.Text))
	b.Queue(createOnceSQL, p.AuthorUserID, key, hash[:], p.ID, p.CreatedAt, domain.IdempotencyWindow,
		e.ID, e.Type, payload, p.Text).Exec(func(ct pgconn.CommandTag) error {
		*created = ct.RowsAffected() == 1
		return nil
	})
	return nil
}

// firstWithKey answers a call whose key was already held: the post it names, if that post had
// the same text, else ECONFLICT.
func (s *PostService) firstWithKey(ctx context.Context, authorID, key, text string) (domain.Post, error) {
	var id uuid.UUID
	var hash []byte
	var at time.Time
	err := s.pool.QueryRow(ctx, `SELECT post_id, request_hash, created_at FROM post_idempotency_keys
		WHERE user_id = $1 AND key = $2`, authorID, key).Scan(&id, &hash, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		// Deleted between our statement and this read: it was at the end of its window.
		return domain.Post{}, domain.Errorf(domain.EUNAVAILABLE, "idempotency key expired meanwhile: retry")
	}
	if err != nil {
		return domain.Post{}, translate(err, "read idempotency key")
	}
	if want := sha256.Sum256([]byte(text)); !bytes.Equal(hash, want[:]) {
		return domain.Post{}, domain.Errorf(domain.ECONFLICT, "Idempotency-Key %q was used for a post with another text", key)
	}
	return domain.Post{ID: id.String(), Text: text, AuthorUserID: authorID, CreatedAt: at.UTC()}, nil
}

// IdempotencyKeys holds the table's upkeep: keys past the window are only ever taken over, so
// without a purge the table would keep one row per keyed post forever.
type IdempotencyKeys struct {
	pool *pgxpool.Pool
}

// NewIdempotencyKeys returns the upkeep of the idempotency keys on pool.
func NewIdempotencyKeys(pool *pgxpool.Pool) *IdempotencyKeys { return &IdempotencyKeys{pool: pool} }

// Purge deletes the keys older than the window, at most 10,000 per statement (short locks, short
// transactions), and returns how many. Several api processes may purge at once.
func (k *IdempotencyKeys) Purge(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	for {
		tag, err := k.pool.Exec(ctx, `DELETE FROM post_idempotency_keys WHERE ctid IN (
			SELECT ctid FROM post_idempotency_keys WHERE created_at < $1 LIMIT 10000)`, now.Add(-domain.IdempotencyWindow))
		if err != nil {
			return total, translate(err, "purge idempotency keys")
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 10000 {
			return total, nil
		}
	}
}
