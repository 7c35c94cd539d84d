package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/socialnet/social/adapters/auth"
	"github.com/socialnet/social/domain"
)

// world is the seeded social graph as the load generator sees it.
type world struct {
	ids    []string // user ids, index = user number; user 0 is the celebrity
	tokens []string // bearer token per user
	// connected[i] is true when user i has open websockets.
	connected []bool
	// connFollowers[a] are the connected followers of author a (their user numbers).
	connFollowers [][]int32
}

// expectedFrames is how many frames a post by author a should produce across all sockets.
func (w *world) expectedFrames(a, tabs int) int { return len(w.connFollowers[a]) * tabs }

// seed writes users and friendships straight into the database with COPY, with the same rows an
// API registration and PUT /friend/set would write: a user.registered event and a users row per
// user, a friend.added event and a friendships row per follow, users.version counting them.
// Going through the API would cost a bcrypt hash per user and a transaction per follow; posts
// under load do go through POST /post/create. Tokens are minted with the system's JWT secret.
//
// Graph: user j follows users j+1..j+F (mod N); users 1..C also follow user 0, the celebrity.
// Connected users are 1..K (0 last), so with K ≥ C every celebrity follower is online.
func seed(ctx context.Context, dbURL, secret string, cfg loadConfig) (*world, error) {
	n := cfg.Users
	w := &world{ids: make([]string, n), tokens: make([]string, n), connected: make([]bool, n), connFollowers: make([][]int32, n)}
	for i := range n {
		w.ids[i] = uuid.Must(uuid.NewV7()).String()
	}
	for k := 0; k < cfg.Connected; k++ {
		w.connected[(k+1)%n] = true
	}
	follows := make([][]int, n) // follows[j] = users j follows, in insertion order
	for j := range n {
		seen := map[int]bool{}
		for k := 1; k <= cfg.Followers; k++ {
			f := (j + k) % n
			seen[f] = true
			follows[j] = append(follows[j], f)
		}
		if j >= 1 && j <= cfg.Celebrity && !seen[0] {
			follows[j] = append(follows[j], 0)
		}
		for _, f := range follows[j] {
			if w.connected[j] {
				w.connFollowers[f] = append(w.connFollowers[f], int32(j))
			}
		}
	}
	tokens, err := auth.NewTokens(secret, 24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("jwt secret: %w", err)
	}
	for i, id := range w.ids {
		if w.tokens[i], err = tokens.Issue(id); err != nil {
			return nil, err
		}
	}
	hash, err := bcrypt.GenerateFromPassword([]byte("socialbench"), bcrypt.MinCost)
	if err != nil {
		return nil, err
	}

	now := time.Now().UTC()
	birth := time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)
	var events, users, friendships [][]any
	for i, id := range w.ids {
		first, second := fmt.Sprintf("Bench%d", i), "User"
		payload, _ := json.Marshal(domain.UserRegistered{UserID: id, FirstName: first, SecondName: second,
			Birthdate: birth.Format(domain.BirthdateLayout), Biography: "socialbench", City: "Bench"})
		events = append(events, []any{uuid.Must(uuid.NewV7()), id, 1, domain.EventUserRegistered, payload, now})
		users = append(users, []any{id, first, second, birth, "socialbench", "Bench", string(hash), 1 + len(follows[i])})
		for v, f := range follows[i] {
			p, _ := json.Marshal(domain.FriendChanged{UserID: id, FriendID: w.ids[f]})
			events = append(events, []any{uuid.Must(uuid.NewV7()), id, 2 + v, domain.EventFriendAdded, p, now})
			friendships = append(friendships, []any{id, w.ids[f], now})
		}
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect to the bench database: %w", err)
	}
	defer conn.Close(ctx)
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"id", "aggregate_id", "aggregate_version", "type", "payload", "created_at"}, pgx.CopyFromRows(events)); err != nil {
			return fmt.Errorf("copy events: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"users"}, []string{"id", "first_name", "second_name", "birthdate", "biography", "city", "password_hash", "version"}, pgx.CopyFromRows(users)); err != nil {
			return fmt.Errorf("copy users: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"friendships"}, []string{"user_id", "friend_id", "created_at"}, pgx.CopyFromRows(friendships)); err != nil {
			return fmt.Errorf("copy friendships: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		return nil, fmt.Errorf("analyze: %w", err)
	}
	return w, nil
}
