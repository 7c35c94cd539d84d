package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/domain"
)

// FriendService implements domain.FriendService. The follower is the aggregate: its users.version
// row is locked and bumped, which orders concurrent friend changes of one user.
type FriendService struct {
	pool  *pgxpool.Pool
	reads reader
	now   func() time.Time
}

var _ domain.FriendService = (*FriendService)(nil)

// NewFriendService returns a FriendService on pool.
func NewFriendService(pool *pgxpool.Pool, opts ...Option) *FriendService {
	return &FriendService{pool: pool, reads: newReader(pool, opts), now: time.Now}
}

// Set makes userID follow friendID. Setting an existing friend changes nothing and appends no event.
func (s *FriendService) Set(ctx context.Context, userID, friendID string) error {
	return s.change(ctx, userID, friendID, true)
}

// Delete stops userID following friendID. Deleting a non-friend changes nothing.
func (s *FriendService) Delete(ctx context.Context, userID, friendID string) error {
	return s.change(ctx, userID, friendID, false)
}

func (s *FriendService) change(ctx context.Context, userID, friendID string, add bool) error {
	if err := domain.ValidateFriend(userID, friendID); err != nil {
		return err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Lock the follower's row first: it orders concurrent changes of this aggregate.
		var version int
		err := tx.QueryRow(ctx, `SELECT version FROM users WHERE id = $1 FOR UPDATE`, userID).Scan(&version)
		if errors.Is(err, pgx.ErrNoRows) {
			// A valid token for a user that does not exist here (e.g. the database was reset).
			return domain.Errorf(domain.EUNAUTHORIZED, "unknown user")
		} else if err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, friendID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return domain.Errorf(domain.ENOTFOUND, "user %s not found", friendID)
		}
		typ := domain.EventFriendAdded
		var tag pgconn.CommandTag
		if add {
			tag, err = tx.Exec(ctx, `INSERT INTO friendships (user_id, friend_id, created_at) VALUES ($1, $2, $3)
				ON CONFLICT DO NOTHING`, userID, friendID, s.now())
		} else {
			typ = domain.EventFriendRemoved
			tag, err = tx.Exec(ctx, `DELETE FROM friendships WHERE user_id = $1 AND friend_id = $2`, userID, friendID)
		}
		if err != nil || tag.RowsAffected() == 0 {
			return err // idempotent: nothing changed, so no event
		}
		b := &pgx.Batch{}
		b.Queue(`UPDATE users SET version = $2 WHERE id = $1`, userID, version+1)
		if err := queueAppend(b, makeEvent(userID, version+1, typ, domain.FriendChanged{UserID: userID, FriendID: friendID}, s.now())); err != nil {
			return err
		}
		return sendBatch(ctx, tx, b)
	})
	return translate(err, "change friend")
}

// Following returns the users userID follows, the most recently followed first (ties by id, so
// pages are stable). The primary key (user_id, friend_id) finds the rows.
func (s *FriendService) Following(ctx context.Context, userID string, page domain.FeedPage) ([]domain.User, error) {
	if err := page.Validate(); err != nil {
		return nil, err
	}
	var users []domain.User
	err := s.reads.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT u.id, u.first_name, u.second_name, u.birthdate, u.biography, u.city
			FROM friendships f JOIN users u ON u.id = f.friend_id
			WHERE f.user_id = $1 ORDER BY f.created_at DESC, f.friend_id OFFSET $2 LIMIT $3`, userID, page.Offset, page.Limit)
		if err != nil {
			return err
		}
		users, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.User, error) { return scanUser(r) })
		if err != nil || len(users) > 0 {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users WHERE id = $1)`, userID).Scan(&exists); err != nil {
			return err
		}
		if !exists {
			return domain.Errorf(domain.EUNAUTHORIZED, "unknown user")
		}
		return nil
	})
	if err != nil {
		return nil, translate(err, "following")
	}
	return users, nil
}
