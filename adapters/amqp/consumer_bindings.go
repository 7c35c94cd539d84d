package amqp

import (
	"context"
	"errors"
	"fmt"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// The bindings of the instance's queue are kept in step with the users connected here by two
// workers per broker session, instead of one RPC per call under a lock: a binding change costs
// the broker ~0.5–1 ms whatever we do (measured on RabbitMQ 3.10 here with 1–16 channels), but a
// round trip per bind on top of it, serialised, made 10,000 first sockets wait minutes.
//
//   - binds are pipelined: every pending bind goes out back to back with no-wait on one channel,
//     the last of a batch waits for its bind-ok. A channel processes its methods in order and a
//     failed bind closes the channel, so that one reply confirms the whole batch.
//   - unbinds (queue.unbind has no no-wait in AMQP 0-9-1) run on unbindChannels channels of their
//     own, one round trip each, so a wave of closing sockets never delays the binds of arriving
//     ones (several channels: ~0.5 ms instead of ~0.9 ms per unbind measured here).
//
// Per user the state is a reference count (sockets wanting the binding) and whether the broker
// has it; at most one operation per user is in flight, so a bind and an unbind of the same user
// can never overtake each other on different channels. Counts commute, so callers need no
// per-user lock of their own.

const (
	bindBatch      = 512 // binds per confirming round trip: bounds how long the first waiter waits
	unbindChannels = 4
)

// binding is one user's state; it lives in Consumer.bindings while wanted, bound or busy.
type binding struct {
	refs    int  // Bind calls not yet undone by Unbind: the binding is wanted while refs > 0
	bound   bool // the broker confirmed it on the current session's queue
	busy    bool // queued or in flight: no second operation for this user meanwhile
	waiters []waiter
}

type waiter struct {
	ch   chan error // buffered 1
	bind bool       // a Bind waits for the binding; an Unbind for its removal
}

// errBindLost fails Bind calls whose session ended before the broker confirmed them.
var errBindLost = errors.New("rabbitmq connection lost before the binding was confirmed")

// Bind adds a reference to the binding routing key = userID and returns once the broker has
// confirmed it (queue.bind-ok on the current session's queue), so frames published from then on
// reach this instance: a socket upgraded after Bind returns misses nothing created after it
// opened, and a resume that reads PostgreSQL afterwards leaves no gap. On error the reference is
// not kept.
//
// While the consumer is not Ready (starting, or reconnecting after a broker failure) Bind fails
// at once with ErrNotConnected instead of recording the wish: the queue it would bind does not
// exist, so every frame published meanwhile would be unroutable and dropped by the broker, and a
// socket opened on such a binding would look subscribed while receiving nothing (issue #11: 0 of
// 100,000 frames for sockets opened while the consumers were still connecting). The hub answers
// 503 with Retry-After; the client retries, as it would against an unready instance.
func (c *Consumer) Bind(ctx context.Context, userID string) error {
	c.mu.Lock()
	if !c.ready.Load() {
		c.mu.Unlock()
		return fmt.Errorf("bind %s: %w", userID, ErrNotConnected)
	}
	b := c.bindings[userID]
	if b == nil {
		b = &binding{}
		c.bindings[userID] = b
	}
	b.refs++
	if b.bound && !b.busy {
		c.mu.Unlock()
		return nil
	}
	w := waiter{ch: make(chan error, 1), bind: true}
	b.waiters = append(b.waiters, w)
	c.scheduleLocked(userID, b)
	c.mu.Unlock()
	select {
	case err := <-w.ch:
		if err != nil {
			c.release(userID)
			return fmt.Errorf("bind %s: %w", userID, err)
		}
		return nil
	case <-ctx.Done():
		c.release(userID)
		return fmt.Errorf("bind %s: %w", userID, ctx.Err())
	}
}

// Unbind drops a reference taken by Bind; after the last one it removes the binding and returns
// once the broker confirmed the removal (or the connection, and with it the queue, is gone).
func (c *Consumer) Unbind(ctx context.Context, userID string) error {
	w, ok := c.releaseWait(userID)
	if !ok {
		return nil
	}
	select {
	case err := <-w.ch:
		if err != nil {
			return fmt.Errorf("unbind %s: %w", userID, err)
		}
		return nil
	case <-ctx.Done():
		// The removal stays scheduled; a binding left behind only brings frames the hub drops.
		return fmt.Errorf("unbind %s: %w", userID, ctx.Err())
	}
}

// release drops a reference without waiting.
func (c *Consumer) release(userID string) { c.releaseWait(userID) }

func (c *Consumer) releaseWait(userID string) (waiter, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.bindings[userID]
	if b == nil || b.refs == 0 {
		return waiter{}, false
	}
	b.refs--
	if b.refs > 0 {
		return waiter{}, false
	}
	if !b.bound && !b.busy {
		delete(c.bindings, userID)
		return waiter{}, false
	}
	if !c.connected.Load() {
		// Not restored yet (or the queue is gone): the restore skips unwanted users.
		return waiter{}, false
	}
	w := waiter{ch: make(chan error, 1)}
	b.waiters = append(b.waiters, w)
	c.scheduleLocked(userID, b)
	return w, true
}

// PendingBindings is the number of users whose binding is being added or removed.
func (c *Consumer) PendingBindings() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, b := range c.bindings {
		if b.busy || (b.refs > 0) != b.bound {
			n++
		}
	}
	return n
}

// scheduleLocked queues userID for its worker unless an operation is already queued or in
// flight (settle re-checks the wish when that one completes).
func (c *Consumer) scheduleLocked(userID string, b *binding) {
	if b.busy {
		return
	}
	b.busy = true
	if b.refs > 0 {
		c.bindQueue = append(c.bindQueue, userID)
		signal(c.bindWake)
	} else {
		c.unbindQueue = append(c.unbindQueue, userID)
		signal(c.unbindWake)
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// settleLocked records a confirmed operation (or none) and either answers the waiters or, if the
// wish changed meanwhile, schedules the next operation.
func (c *Consumer) settleLocked(userID string, b *binding) {
	b.busy = false
	if (b.refs > 0) != b.bound {
		c.scheduleLocked(userID, b)
		return
	}
	for _, w := range b.waiters {
		w.ch <- nil
	}
	b.waiters = nil
	if b.refs == 0 {
		delete(c.bindings, userID)
	}
}

// takeLocked removes up to max users from q whose operation is still needed, settling the rest
// (their wish flipped back before we got to them: nothing to send).
func (c *Consumer) takeLocked(q *[]string, bind bool, max int) []string {
	var out []string
	for len(*q) > 0 && len(out) < max {
		u := (*q)[0]
		*q = (*q)[1:]
		b := c.bindings[u]
		if b == nil || !b.busy {
			continue
		}
		want := b.refs > 0
		switch {
		case want == b.bound:
			c.settleLocked(u, b)
		case want != bind: // flipped to the other kind: hand it over
			b.busy = false
			c.scheduleLocked(u, b)
		default:
			out = append(out, u)
		}
	}
	if len(*q) == 0 {
		*q = nil // let a burst's backing array go
	}
	return out
}

// bindWorker pipelines the queued binds of one session on ch until done closes.
func (c *Consumer) bindWorker(done <-chan struct{}, gen uint64, ch *amqp091.Channel) {
	for {
		select {
		case <-done:
			return
		case <-c.bindWake:
		}
		for {
			c.mu.Lock()
			if c.gen != gen {
				c.mu.Unlock()
				return
			}
			users := c.takeLocked(&c.bindQueue, true, bindBatch)
			c.mu.Unlock()
			if len(users) == 0 {
				break
			}
			err := bindPipelined(ch, c.queue, c.cfg.Exchange, users)
			c.mu.Lock()
			if c.gen != gen {
				c.mu.Unlock()
				return
			}
			if err != nil {
				// The session ends; its reset answers the waiters and the reconnect restores
				// every wanted binding.
				c.dropConnectionLocked(fmt.Errorf("bind: %w", err))
				c.mu.Unlock()
				return
			}
			for _, u := range users {
				if b := c.bindings[u]; b != nil {
					b.bound = true
					c.settleLocked(u, b)
				}
			}
			c.mu.Unlock()
		}
	}
}

// unbindWorker removes bindings one by one on ch until done closes; several run side by side.
func (c *Consumer) unbindWorker(done <-chan struct{}, gen uint64, ch *amqp091.Channel) {
	for {
		select {
		case <-done:
			return
		case <-c.unbindWake:
		}
		for {
			c.mu.Lock()
			if c.gen != gen {
				c.mu.Unlock()
				return
			}
			users := c.takeLocked(&c.unbindQueue, false, 1)
			if len(c.unbindQueue) > 0 {
				signal(c.unbindWake) // wake another unbind worker for the next one
			}
			c.mu.Unlock()
			if len(users) == 0 {
				break
			}
			u := users[0]
			err := ch.QueueUnbind(c.queue, u, c.cfg.Exchange, nil)
			c.mu.Lock()
			if c.gen != gen {
				c.mu.Unlock()
				return
			}
			if err != nil {
				// A binding we failed to remove only costs deliveries the hub drops; the
				// reconnect this forces forgets it with the queue.
				c.dropConnectionLocked(fmt.Errorf("unbind %s: %w", u, err))
				c.mu.Unlock()
				return
			}
			if b := c.bindings[u]; b != nil {
				b.bound = false
				c.settleLocked(u, b)
			}
			c.mu.Unlock()
		}
	}
}

// bindPipelined sends queue.bind for every user with no-wait except the last, whose bind-ok
// confirms them all (in-order processing on a channel; any failure closes the channel, and the
// wait then returns that error).
func bindPipelined(ch *amqp091.Channel, queue, exchange string, users []string) error {
	for i, u := range users {
		if err := ch.QueueBind(queue, u, exchange, i < len(users)-1, nil); err != nil {
			return err
		}
	}
	return nil
}

// resetLocked ends a session's view of the bindings: the exclusive queue died with the
// connection, so nothing is bound any more. Binds in flight fail (the hub answers 503 and the
// client retries); unbinds in flight are done (their binding went with the queue).
func (c *Consumer) resetLocked() {
	c.gen++
	c.bindQueue, c.unbindQueue = nil, nil
	for u, b := range c.bindings {
		for _, w := range b.waiters {
			if w.bind {
				w.ch <- errBindLost
			} else {
				w.ch <- nil
			}
		}
		b.waiters, b.bound, b.busy = nil, false, false
		if b.refs == 0 {
			delete(c.bindings, u)
		}
	}
}

// restore binds every wanted user on a new session's queue before it is announced ready. It
// does not hold c.mu during the round trips: meanwhile Bind refuses (not ready) and Unbind only
// records its wish (not connected yet), which the workers carry out after the restore.
func (c *Consumer) restore(ch *amqp091.Channel) error {
	c.mu.Lock()
	c.bindQueue, c.unbindQueue = nil, nil
	var users []string
	for u, b := range c.bindings {
		b.busy = false
		if b.refs > 0 {
			b.busy = true
			users = append(users, u)
		}
	}
	c.mu.Unlock()
	for i := 0; i < len(users); i += bindBatch * 4 {
		if err := bindPipelined(ch, c.queue, c.cfg.Exchange, users[i:min(len(users), i+bindBatch*4)]); err != nil {
			return fmt.Errorf("restore %d bindings: %w", len(users), err)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range users {
		if b := c.bindings[u]; b != nil {
			b.bound = true
			c.settleLocked(u, b)
		}
	}
	return nil
}
