package websocket_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/internal/wait"
)

// TestBrokerReconnectFillsTheGapWithoutClosingSockets cuts the subscriber's connection: the
// exclusive queue dies with it and frames routed meanwhile are dropped by the broker. The
// subscriber declares queue and binding again and the hub reads the instance's gap from the
// outbox once: the sockets stay open, the frames of the gap arrive once, in order, then live ones
// (their live copies, had they been routed around the reconnect, are skipped); a second reconnect
// sends none of them again.
func TestBrokerReconnectFillsTheGapWithoutClosingSockets(t *testing.T) {
	t.Parallel()
	proxy := amqptest.NewProxy(t, amqptest.Addr())
	db := pgtest.New(t)
	e := newEnvVia(t, db, "test.feed."+uuid.NewString(), slog.New(slog.DiscardHandler), proxy.URL())
	author, reader, idle := register(t, db, "author"), register(t, db, "reader"), register(t, db, "idle")
	follow(t, db, reader, author)
	follow(t, db, idle, author)
	c := e.dial(t, reader, "")
	quiet := e.dial(t, idle, "") // has seen no frame: its gap starts at the instance's floor
	first := postRelayed(t, db, author, "before")
	e.publish(t, first, reader, idle)
	if f := c.next(15 * time.Second); f.PostID != first.PostID {
		t.Fatalf("got %+v, want the first post", f)
	}
	quiet.next(15 * time.Second)

	// The broker connection goes; two posts are relayed while the queue does not exist (their
	// live copies are lost: nothing is published for them here). The proxy holds the subscriber's
	// new connections until both are relayed: a reconnect that read the gap before them would
	// leave them to the relay's live publish, which this test does not make, and they would never
	// arrive.
	gaps := e.metric("social_ws_gap_fills_total")
	var gap []string
	func() {
		proxy.Pause()
		defer proxy.Resume() // also on t.Fatal: the proxy's cleanup waits for its held copies
		proxy.Cut()
		gap = []string{postRelayed(t, db, author, "gap 1").PostID, postRelayed(t, db, author, "gap 2").PostID}
	}()
	wait.For(t, 20*time.Second, "subscriber ready again", func() bool { return e.sub.Ready(context.Background()) == nil })
	for _, cl := range []*client{c, quiet} {
		for _, want := range gap {
			if f := cl.next(15 * time.Second); f.PostID != want {
				t.Fatalf("after the reconnect got %+v, want post %s of the gap", f, want)
			}
		}
	}

	// A second cut before any frame arrived live: its gap starts where the first one's ended,
	// which must not be sent again (it was, when the gap's start was the last live frame only).
	proxy.Cut()
	wait.For(t, 20*time.Second, "the second gap filled", func() bool { return e.metric("social_ws_gap_fills_total") == gaps+2 })
	live := postRelayed(t, db, author, "after")
	e.publish(t, live, reader, idle)
	for _, cl := range []*client{c, quiet} {
		if f := cl.next(15 * time.Second); f.PostID != live.PostID {
			t.Fatalf("live after the refills: got %+v, want %s", f, live.PostID)
		}
		expectNone(t, cl)
	}
	if n := e.hub.Connections(); n != 2 {
		t.Fatalf("%d sockets open after the reconnects, want both", n)
	}
}

// TestLapsedRegistrationFillsTheGapInOrder: the instance's lease lapses (as after a stall longer
// than REALTIME_LEASE), so routing skips it; it registers again and fills each socket's gap from
// the outbox. A frame routed once the new registration commits waits behind the gap: the socket
// gets the gap's frames, then it, in position order, and stays open.
func TestLapsedRegistrationFillsTheGapInOrder(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	e := newEnvWith(t, db, "test.feed."+uuid.NewString(), slog.New(slog.DiscardHandler))
	author, reader := register(t, db, "author"), register(t, db, "reader")
	follow(t, db, reader, author)
	c := e.dial(t, reader, "")
	first := postRelayed(t, db, author, "before")
	e.publish(t, first, reader)
	c.next(15 * time.Second)

	// The lease lapses in a transaction that stays open while two posts are relayed (nothing is
	// published for them: they stand for frames routing skipped). Its row lock holds the
	// instance's renewal until both are relayed: a registration again before them would leave
	// them to live routing, which this test does not do, and they would never arrive.
	refills := e.metric("social_ws_refills_total")
	var gap []string
	func() {
		ctx := context.Background()
		tx, err := db.Pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx) // on t.Fatal: the renewal waits on this row
		if _, err := tx.Exec(ctx, `UPDATE realtime_instances SET lease_until = now() - interval '1 second' WHERE id = $1`, e.instance); err != nil {
			t.Fatal(err)
		}
		gap = []string{postRelayed(t, db, author, "gap 1").PostID, postRelayed(t, db, author, "gap 2").PostID}
		if err := tx.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}()
	wait.For(t, 20*time.Second, "registered again", func() bool {
		return db.Count(t, "realtime_instances", "id = '"+e.instance+"'", "lease_until > now()") == 1
	})
	live := postRelayed(t, db, author, "after")
	e.publish(t, live, reader)
	for _, want := range append(gap, live.PostID) {
		if f := c.next(15 * time.Second); f.PostID != want {
			t.Fatalf("got %+v, want post %s (the gap, then the live frame)", f, want)
		}
	}
	if n := e.hub.Connections(); n != 1 {
		t.Fatalf("%d sockets after the lapse, want the one", n)
	}
	wait.For(t, 10*time.Second, "the refill counted", func() bool { return e.metric("social_ws_refills_total") > refills })
}
