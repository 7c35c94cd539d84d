package outbox

import (
	"context"
	"slices"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/socialnet/social/adapters/postgres/pgtest"
)

// TestPresenceCopyCatchesUpWithLateCommits: the copy must hold every presence row committed
// before a catch-up's snapshot, including a row whose transaction began (took its id) before the
// previous catch-up and committed after it. A copy that only read rows newer than the newest it
// had seen would skip that row for good, and its user would get no frame routed while the resume
// had already passed them.
func TestPresenceCopyCatchesUpWithLateCommits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	db.Exec(t, `INSERT INTO realtime_instances (id, lease_until) VALUES ('i1', now() + interval '1 hour'), ('i2', now() + interval '1 hour')`)
	conn, err := pgx.ConnectConfig(ctx, leaderConfig(db.Pool, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v presenceView
	if err := v.load(ctx, conn); err != nil {
		t.Fatal(err)
	}
	catchUp := func() {
		t.Helper()
		b := &pgx.Batch{}
		v.queueCatchUp(b)
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			t.Fatal(err)
		}
	}
	has := func(user uuid.UUID, want ...string) {
		t.Helper()
		var got []string
		if u := v.lookUp(user); u != nil {
			got = slices.Sorted(slices.Values(u.instances))
			if u.id != user.String() {
				t.Errorf("user %s copied as %q", user, u.id)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("user %s on %v in the copy, want %v", user, got, want)
		}
	}
	late, early, moved := uuid.New(), uuid.New(), uuid.New()

	tx, err := db.Pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO presence (user_id, instance_id) VALUES ($1, 'i1')`, late); err != nil {
		t.Fatal(err)
	}
	db.Exec(t, `INSERT INTO presence (user_id, instance_id) VALUES ($1, 'i1'), ($2, 'i1')`, early, moved)
	catchUp() // late's transaction is in flight: in this snapshot's xip
	has(early, "i1")
	has(late)
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	catchUp()
	has(late, "i1")

	// A user who moved between catch-ups has the instances of the table, not the union.
	db.Exec(t, `WITH gone AS (DELETE FROM presence WHERE user_id = $1) INSERT INTO presence (user_id, instance_id) VALUES ($1, 'i2')`, moved)
	catchUp()
	has(moved, "i2")
	has(early, "i1")

	// A user who only left stays until a full load (a frame to an instance that drops it).
	db.Exec(t, `DELETE FROM presence WHERE user_id = $1`, early)
	catchUp()
	has(early, "i1")
	if err := v.load(ctx, conn); err != nil {
		t.Fatal(err)
	}
	has(early)
	has(late, "i1")
	has(moved, "i2")
}
