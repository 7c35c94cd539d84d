package outbox_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
)

// opsUser registers a user through the real service and returns the id.
func opsUser(t testing.TB, db *pgtest.DB, name string) string {
	t.Helper()
	id, err := postgres.NewUserService(db.Pool).Register(context.Background(),
		domain.Registration{FirstName: name, SecondName: "Ops", Birthdate: "1990-01-02", City: "Riga", Password: "x"},
		time.Date(1990, 1, 2, 0, 0, 0, 0, time.UTC), "hash")
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return id
}

// opsPosts creates n posts by author through the real PostService (event + outbox row in one
// transaction) and returns the post ids in creation order.
func opsPosts(t testing.TB, db *pgtest.DB, author string, n int) []string {
	t.Helper()
	posts := postgres.NewPostService(db.Pool)
	ids := make([]string, n)
	for i := range n {
		p, err := posts.Create(context.Background(), author, fmt.Sprintf("post %d", i))
		if err != nil {
			t.Fatalf("create post: %v", err)
		}
		ids[i] = p.ID
	}
	return ids
}

// opsRelayAll plays the part of a finished dispatcher: every pending row becomes relayed now, with
// position = outbox id (ids are 1, 2, 3... in a fresh database, which keeps the tests readable).
func opsRelayAll(t testing.TB, db *pgtest.DB) {
	t.Helper()
	db.Exec(t, `UPDATE outbox SET status = 'relayed', position = coalesce(position, id), keep_position = false,
		relayed_at = now() WHERE status = 'pending'`)
	db.Exec(t, `SELECT setval('outbox_position_seq', (SELECT max(id) FROM outbox))`)
}

// opsPendingPositions returns the positions of pending rows, in order.
func opsPendingPositions(t testing.TB, db *pgtest.DB) []int64 {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(), `SELECT position FROM outbox WHERE status = 'pending' ORDER BY position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int64
	for rows.Next() {
		var p int64
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func span(from, to int64) []int64 {
	var out []int64
	for p := from; p <= to; p++ {
		out = append(out, p)
	}
	return out
}
