package amqp_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/amqp/amqptest"
)

// bindEnv is a consumer on its own exchange plus a prober that asks the broker whether a routing
// key reaches any queue.
type bindEnv struct {
	t        *testing.T
	c        *amqp.Consumer
	exchange string
	probe    *amqp091.Channel
	returns  chan amqp091.Return
	mu       sync.Mutex // one probe at a time: returns are matched by order
}

func newBindEnv(t *testing.T, brokerURL string) *bindEnv {
	t.Helper()
	e := &bindEnv{t: t, exchange: "test.feed." + uuid.NewString()}
	var ch *amqp091.Channel
	e.c, ch = startConsumer(t, amqp.ConsumerConfig{
		Dialer: amqp.NewDialer([]string{brokerURL}), Exchange: e.exchange, QueuePrefix: "test.realtime.",
		MinBackoff: 20 * time.Millisecond, Handle: func(amqp.Delivery) {},
	})
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	e.probe, e.returns = ch, ch.NotifyReturn(make(chan amqp091.Return, 1))
	e.waitReady()
	return e
}

func (e *bindEnv) waitReady() {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for e.c.Ready(context.Background()) != nil {
		if time.Now().After(deadline) {
			e.t.Fatal("consumer not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// bound publishes a mandatory probe to user: the broker returns it (before the ack) if no queue
// is bound with that key. The exchange exists once the consumer is ready.
func (e *bindEnv) bound(user string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	dc, err := e.probe.PublishWithDeferredConfirmWithContext(context.Background(), e.exchange, user, true, false,
		amqp091.Publishing{Body: []byte("probe"), DeliveryMode: amqp091.Transient})
	if err != nil {
		e.t.Error(err)
		return false
	}
	if !dc.Wait() {
		e.t.Error("probe nacked")
	}
	select {
	case <-e.returns:
		return false
	default:
		return true
	}
}

// TestBatchedBindsReturnOnlyOnceConfirmed binds many users at once (they go out pipelined, in
// batches confirmed by one round trip) and checks each binding routes the moment its Bind
// returns: a resume that reads PostgreSQL right after Bind must not miss a frame.
func TestBatchedBindsReturnOnlyOnceConfirmed(t *testing.T) {
	t.Parallel()
	e := newBindEnv(t, amqptest.URL())
	const n = 300
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := uuid.NewString()
			if err := e.c.Bind(context.Background(), u); err != nil {
				t.Error(err)
				return
			}
			if !e.bound(u) {
				t.Errorf("Bind(%s) returned before the broker routed its key", u)
			}
		}()
	}
	wg.Wait()
	waitPending(t, e.c)
}

// TestBindingsAreCountedPerUser: the hub binds once per socket; the binding stays while any
// reference is held, goes with the last, and concurrent churn of one user ends consistent.
func TestBindingsAreCountedPerUser(t *testing.T) {
	t.Parallel()
	e := newBindEnv(t, amqptest.URL())
	ctx := context.Background()
	u := uuid.NewString()
	for range 2 {
		if err := e.c.Bind(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.c.Unbind(ctx, u); err != nil {
		t.Fatal(err)
	}
	if !e.bound(u) {
		t.Fatal("unbound while a reference is held")
	}
	if err := e.c.Unbind(ctx, u); err != nil {
		t.Fatal(err)
	}
	if e.bound(u) {
		t.Fatal("still bound after the last Unbind returned")
	}

	// Sockets of one user coming and going concurrently: every Bind sees the binding.
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if err := e.c.Bind(ctx, u); err != nil {
					t.Error(err)
					return
				}
				if !e.bound(u) {
					t.Error("Bind returned while the binding was missing")
				}
				if err := e.c.Unbind(ctx, u); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitPending(t, e.c)
	if e.bound(u) {
		t.Fatal("bound after every reference was dropped")
	}
}

// TestRestoreAfterReconnectRebindsEveryWantedUser cuts the connection: the exclusive queue dies
// with its bindings; the reconnect restores every wanted one (pipelined) before Ready, and none
// that was dropped meanwhile. A Bind while disconnected is refused (ErrNotConnected) and leaves
// nothing behind: it could not promise that frames reach this instance.
func TestRestoreAfterReconnectRebindsEveryWantedUser(t *testing.T) {
	t.Parallel()
	proxy := amqptest.NewProxy(t, amqptest.Addr())
	e := newBindEnv(t, proxy.URL())
	ctx := context.Background()
	users := make([]string, 1200)
	for i := range users {
		users[i] = uuid.NewString()
		if err := e.c.Bind(ctx, users[i]); err != nil {
			t.Fatal(err)
		}
	}
	proxy.Cut()
	deadline := time.Now().Add(10 * time.Second)
	for e.c.Ready(ctx) == nil { // the consumer notices the cut
		if time.Now().After(deadline) {
			t.Fatal("consumer did not notice the cut")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// While disconnected: one user leaves, one arrives.
	if err := e.c.Unbind(ctx, users[0]); err != nil {
		t.Fatal(err)
	}
	refused := uuid.NewString()
	if err := e.c.Bind(ctx, refused); !errors.Is(err, amqp.ErrNotConnected) {
		t.Fatalf("Bind while disconnected = %v, want ErrNotConnected", err)
	}
	e.waitReady()
	late := uuid.NewString()
	if err := e.c.Bind(ctx, late); err != nil {
		t.Fatal(err)
	}
	waitPending(t, e.c)
	if e.bound(refused) {
		t.Error("a Bind refused while disconnected was restored")
	}
	if e.bound(users[0]) {
		t.Error("a user unbound while disconnected was restored")
	}
	for _, u := range append(users[1:], late) {
		if !e.bound(u) {
			t.Fatalf("binding of %s not restored", u)
		}
	}
}

func waitPending(t *testing.T, c *amqp.Consumer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for c.PendingBindings() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d binding changes still pending", c.PendingBindings())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
