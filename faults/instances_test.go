//go:build faults

package faults

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/socialnet/social/internal/wait"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/faults/testinfra"
)

// presenceOf lists the instances holding user's presence.
func presenceOf(t *testing.T, pool *pgxpool.Pool, user string) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT instance_id FROM presence WHERE user_id = $1`, user)
	if err != nil {
		return nil // the database may be restarting
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if rows.Scan(&id) == nil {
			out = append(out, id)
		}
	}
	return out
}

// TestKilledRealtimeInstanceIsForgottenAndItsUsersResumeElsewhere: a realtime instance killed with
// SIGKILL says no goodbye; its registration lapses after REALTIME_LEASE and the surviving instance
// deletes it with its presence, so routing stops sending to a queue that is gone. Its users
// reconnect to the other instance with ?since= and miss nothing posted meanwhile.
func TestKilledRealtimeInstanceIsForgottenAndItsUsersResumeElsewhere(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	exchange := "test.feed." + uuid.NewString()
	t.Cleanup(func() { amqptest.DeleteExchange(t, exchange) })
	s := startStack(t, stackConfig{databaseURL: db.URL, dispatcherAMQP: amqptest.URL(), realtimeAMQP: amqptest.URL(), exchange: exchange})
	other := testinfra.StartProcess(t, "realtime-b", socialBin, s.realtimeEnv, "realtime")
	otherURL := other.Addr(t, "realtime")
	waitStatus(t, "http://"+otherURL+"/readyz", http.StatusOK, 60*time.Second)

	api := newAPIClient(t, s.apiURL)
	author := api.register("author")
	follower := api.register("follower")
	api.follow(follower, author)
	f := openFeedOn(t, context.Background(), []string{s.wsURL, "ws://" + otherURL + "/post/feed/posted"}, follower)
	r, first := api.post(author, "before the kill")
	api.must(r, "first post")
	f.waitFor([]string{first}, 15*time.Second)
	killed := presenceOf(t, db.Pool, follower.id)
	if len(killed) != 1 {
		t.Fatalf("follower present on %v, want one instance", killed)
	}

	p := startPoster(t, api, author, 50*time.Millisecond)
	wait.For(t, 10*time.Second, "posts flowing before the kill", func() bool { return p.count() >= 5 })
	s.realtime.Kill(t)
	wait.For(t, 20*time.Second, "the killed instance's registration and presence gone", func() bool {
		return db.Count(t, "realtime_instances", "id = '"+killed[0]+"'") == 0 && db.Count(t, "presence", "instance_id = '"+killed[0]+"'") == 0
	})
	wait.For(t, 20*time.Second, "the follower present on the other instance", func() bool {
		now := presenceOf(t, db.Pool, follower.id)
		return len(now) == 1 && now[0] != killed[0]
	})
	after := p.count()
	wait.For(t, 10*time.Second, "posts after the move", func() bool { return p.count() >= after+5 })
	ids := append([]string{first}, p.stop(t)...)
	f.waitFor(ids, 30*time.Second)
	dups, _ := f.exactlyOnce(ids)
	f.inOrder()
	t.Logf("%d posts, %d duplicates removed, %d connections", len(ids), dups, f.connectCount())
}

// TestDatabaseCrashRebuildsPresenceAndFramesFlow crashes a private PostgreSQL (immediate stop:
// crash recovery empties the unlogged presence tables) under an open socket. The realtime instance
// finds its registration gone, registers again with its users and fills the socket's gap; posts
// after the restart reach the socket the client kept open, without any client action.
func TestDatabaseCrashRebuildsPresenceAndFramesFlow(t *testing.T) {
	t.Parallel()
	pg := testinfra.StartPostgres(t)
	dbURL := pg.URL("social")
	migrate := testinfra.StartProcess(t, "migrate", socialBin, map[string]string{"DATABASE_URL": dbURL}, "migrate")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := migrate.Wait(ctx); err != nil {
		t.Fatalf("social migrate: %v", err)
	}
	exchange := "test.feed." + uuid.NewString()
	t.Cleanup(func() { amqptest.DeleteExchange(t, exchange) })
	s := startStack(t, stackConfig{databaseURL: dbURL, dispatcherAMQP: amqptest.URL(), realtimeAMQP: amqptest.URL(), exchange: exchange})
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)

	api := newAPIClient(t, s.apiURL)
	author := api.register("author")
	follower := api.register("follower")
	api.follow(follower, author)
	f := openFeed(t, context.Background(), s.wsURL, follower)
	r, first := api.post(author, "before the crash")
	api.must(r, "first post")
	f.waitFor([]string{first}, 15*time.Second)

	pg.Crash(t)
	pg.Start(t)
	for _, u := range []string{s.apiURL, s.dispatcherURL, s.realtimeURL} {
		waitStatus(t, u+"/readyz", http.StatusOK, 30*time.Second)
	}
	wait.For(t, 20*time.Second, "presence rebuilt", func() bool { return len(presenceOf(t, pool, follower.id)) == 1 })
	r, second := api.post(author, "after the crash")
	api.must(r, "post after the crash")
	f.waitFor([]string{first, second}, 30*time.Second)
	f.exactlyOnce([]string{first, second})
	if n := f.connectCount(); n != 1 {
		t.Errorf("%d connections (close codes %v), want the one the client opened", n, f.codes())
	}
}
