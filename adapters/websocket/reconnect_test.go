package websocket_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/adapters/postgres/pgtest"
)

// TestBrokerReconnectRestoresBindingsAndAsksClientsToResume cuts the consumer's connection: the
// exclusive queue dies with it and frames published meanwhile are lost for this instance. The
// consumer reconnects, redeclares the queue and restores every binding; the hub closes the open
// sockets with 1012 so their clients resume with ?since= from PostgreSQL.
func TestBrokerReconnectRestoresBindingsAndAsksClientsToResume(t *testing.T) {
	t.Parallel()
	proxy := amqptest.NewProxy(t, amqptest.Addr())
	e := newEnvVia(t, pgtest.New(t), "test.feed."+uuid.NewString(), slog.New(slog.DiscardHandler), proxy.URL())
	user := uuid.NewString()
	c := e.dial(t, user, "")
	e.publish(t, frameAt(1, uuid.NewString()), user)
	c.next(15 * time.Second)

	// A binding held by the consumer itself (no socket) shows the restore independently of the
	// sockets, which the hub closes.
	held := uuid.NewString()
	if err := e.consumer.Bind(context.Background(), held); err != nil {
		t.Fatal(err)
	}
	proxy.Cut()
	if got := c.closeStatus(10 * time.Second); got != 1012 {
		t.Fatalf("close status %d, want 1012 (service restart: resume)", got)
	}
	waitFor(t, 20*time.Second, "consumer ready again", func() bool { return e.consumer.Ready(context.Background()) == nil })
	if !e.bound(t, held) {
		t.Fatal("binding not restored after reconnect")
	}
	waitFor(t, 20*time.Second, "the closed socket's binding removed", func() bool { return !e.bound(t, user) })

	// since=0: the frames here are published straight to the exchange, so the database knows no
	// position (a since above its newest would be answered with resync).
	c2 := e.dial(t, user, "since=0")
	e.publish(t, frameAt(2, uuid.NewString()), user)
	if f := c2.next(15 * time.Second); f.Position != 2 {
		t.Fatalf("after reconnect got %+v", f)
	}
}
