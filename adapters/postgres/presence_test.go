package postgres_test

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/socialnet/social/internal/wait"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
)

// startPresence runs a registered Presence until the test ends.
func startPresence(t *testing.T, pool *pgxpool.Pool, id string, lease time.Duration, onLost func()) *postgres.Presence {
	t.Helper()
	p, err := postgres.NewPresence(postgres.PresenceConfig{Pool: pool, InstanceID: id, Lease: lease, OnLost: onLost})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wait.For(t, 10*time.Second, "instance registered", func() bool { return p.Ready(ctx) == nil })
	return p
}

// presentUsers reads the presence rows of instance id.
func presentUsers(t *testing.T, pool *pgxpool.Pool, id string) map[string]bool {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT user_id::text FROM presence WHERE instance_id = $1`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			t.Fatal(err)
		}
		out[u] = true
	}
	return out
}

// TestPresenceJoinCommitsBeforeItReturnsAndLeaveAfterTheLastSocket: the hand-over rule of
// design.md §3 rests on Join returning only once the row is committed.
func TestPresenceJoinCommitsBeforeItReturnsAndLeaveAfterTheLastSocket(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	p := startPresence(t, db.Pool, "rt-a", 0, nil)
	ctx := context.Background()
	u := uuid.NewString()
	for range 2 { // two sockets of one user
		if err := p.Join(ctx, u); err != nil {
			t.Fatal(err)
		}
		if !presentUsers(t, db.Pool, "rt-a")[u] {
			t.Fatal("Join returned before the presence row was committed")
		}
	}
	p.Leave(u)
	time.Sleep(50 * time.Millisecond) // a wrong delete would have happened by now; the check below is the real one
	if !presentUsers(t, db.Pool, "rt-a")[u] {
		t.Fatal("presence deleted while the user still holds a socket")
	}
	p.Leave(u)
	wait.For(t, 5*time.Second, "presence deleted after the last socket", func() bool { return !presentUsers(t, db.Pool, "rt-a")[u] })
}

// TestPresenceBatchesAStormOfJoins: 2,000 concurrent joins take far fewer statements than joins.
func TestPresenceBatchesAStormOfJoins(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	p := startPresence(t, db.Pool, "rt-storm", 0, nil)
	const n = 2000
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Join(context.Background(), uuid.NewString()); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d joins failed", failed.Load())
	}
	if got := len(presentUsers(t, db.Pool, "rt-storm")); got != n {
		t.Fatalf("%d presence rows, want %d", got, n)
	}
	if w := p.Writes(); w > n/10 {
		t.Fatalf("%d statements for %d joins: not batched", w, n)
	} else {
		t.Logf("%d joins in %d statements", n, w)
	}
}

// TestPresenceRebuiltAfterTheTablesAreLost: a crash recovery truncates the unlogged tables; the
// instance registers again with every user still connected and tells the hub (OnLost).
func TestPresenceRebuiltAfterTheTablesAreLost(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	var lost atomic.Int64
	p := startPresence(t, db.Pool, "rt-b", time.Second, func() { lost.Add(1) })
	ctx := context.Background()
	users := []string{uuid.NewString(), uuid.NewString()}
	for _, u := range users {
		if err := p.Join(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Pool.Exec(ctx, `TRUNCATE realtime_instances, presence`); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "presence rebuilt", func() bool {
		got := presentUsers(t, db.Pool, "rt-b")
		return got[users[0]] && got[users[1]] && lost.Load() == 1
	})
}

// TestPresenceOfALapsedInstanceIsCleanedUp: an instance that stopped renewing (killed) loses its
// registration and presence to the next instance's renewal; it registers again if it comes back.
func TestPresenceOfALapsedInstanceIsCleanedUp(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	ctx := context.Background()
	// A dead instance: a lease in the past and a user.
	if _, err := db.Pool.Exec(ctx, `INSERT INTO realtime_instances (id, lease_until) VALUES ('rt-dead', now() - interval '1 second')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO presence (user_id, instance_id) VALUES ($1, 'rt-dead')`, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	var lost atomic.Int64
	p := startPresence(t, db.Pool, "rt-live", time.Second, func() { lost.Add(1) })
	if got := presentUsers(t, db.Pool, "rt-dead"); len(got) != 0 {
		t.Fatalf("the lapsed instance's presence survived the registration: %v", got)
	}
	// Our own lease lapses (as after a long stall): the renewal finds it and registers again.
	u := uuid.NewString()
	if err := p.Join(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `UPDATE realtime_instances SET lease_until = now() - interval '1 second' WHERE id = 'rt-live'`); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "registered again after the lease lapsed", func() bool {
		var live bool
		err := db.Pool.QueryRow(ctx, `SELECT lease_until > now() FROM realtime_instances WHERE id = 'rt-live'`).Scan(&live)
		return err == nil && live && lost.Load() == 1 && presentUsers(t, db.Pool, "rt-live")[u]
	})
}

// TestPresenceRefusesJoinsWithoutTheDatabase: with PostgreSQL unreachable a join fails (the hub
// answers 503) instead of opening a socket nothing is routed to.
func TestPresenceRefusesJoinsWithoutTheDatabase(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	p := startPresence(t, db.Pool, "rt-c", 0, nil)
	// Cut the database away: every session of this test database is terminated and new ones are
	// refused.
	ctx := context.Background()
	admin, err := pgxpool.New(ctx, pgtest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(ctx, `ALTER DATABASE `+db.Name+` ALLOW_CONNECTIONS false`); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, db.Name); err != nil {
		t.Fatal(err)
	}
	db.Pool.Reset()
	jctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = p.Join(jctx, uuid.NewString())
	if err == nil {
		t.Fatal("Join succeeded without a database")
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Join waited for its deadline instead of failing: %v", err)
	}
	if _, err := admin.Exec(ctx, `ALTER DATABASE `+db.Name+` ALLOW_CONNECTIONS true`); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 10*time.Second, "joins served again", func() bool { return p.Join(ctx, uuid.NewString()) == nil })
}

// TestPresenceOfAKilledInstanceIsDeletedByAnotherInstancesRenewal: an instance that stops renewing
// (killed) is deleted, with its presence, by the next renewal of any live instance.
func TestPresenceOfAKilledInstanceIsDeletedByAnotherInstancesRenewal(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	startPresence(t, db.Pool, "rt-survivor", time.Second, nil)
	ctx := context.Background()
	if _, err := db.Pool.Exec(ctx, `INSERT INTO realtime_instances (id, lease_until) VALUES ('rt-killed', now() + interval '300 milliseconds')`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Pool.Exec(ctx, `INSERT INTO presence (user_id, instance_id) VALUES ($1, 'rt-killed')`, uuid.NewString()); err != nil {
		t.Fatal(err)
	}
	wait.For(t, 5*time.Second, "the killed instance forgotten", func() bool {
		var n int
		err := db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM realtime_instances WHERE id = 'rt-killed') + (SELECT count(*) FROM presence WHERE instance_id = 'rt-killed')`).Scan(&n)
		return err == nil && n == 0
	})
}

// TestPresenceJoinDuringALeavesDeleteWaitsForTheInsert: a page reload — the last socket closes
// (its row's delete starts) and a new one joins while the delete runs. The join must return only
// once the row is back, or the resume that follows could miss a frame nobody routes here.
func TestPresenceJoinDuringALeavesDeleteWaitsForTheInsert(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	p := startPresence(t, db.Pool, "rt-reload", 0, nil)
	ctx := context.Background()
	for i := range 200 {
		u := uuid.NewString()
		if err := p.Join(ctx, u); err != nil {
			t.Fatal(err)
		}
		writes := p.Writes()
		p.Leave(u)
		// Join as the delete's statement starts (the count moves just before it is sent).
		for deadline := time.Now().Add(5 * time.Second); p.Writes() == writes; runtime.Gosched() {
			if time.Now().After(deadline) {
				t.Fatal("the delete never started")
			}
		}
		if err := p.Join(ctx, u); err != nil {
			t.Fatal(err)
		}
		if !presentUsers(t, db.Pool, "rt-reload")[u] {
			t.Fatalf("reload %d: Join returned with no presence row", i)
		}
	}
}
