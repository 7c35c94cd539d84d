package amqp

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Publisher is a Watermill message.Publisher on amqp091-go: Publish sends all its messages to the
// configured direct exchange with routing key = topic (a realtime instance's id), pipelined on a
// confirm-mode channel, and returns once the broker confirmed every one of them (or with a
// *PublishError naming the ones it did not). Compared with watermill-amqp (design.md §7) it waits
// for the confirms of a whole call at once instead of one round trip per message, keeps nothing
// per topic, and never blocks forever: connecting is lazy with backoff and every wait is bounded.
// Concurrent calls are written one after the other (each call's messages keep their order) and
// wait for their confirms side by side.
type Publisher struct {
	cfg PublisherConfig
	log *slog.Logger

	mu       sync.Mutex // held while a call writes: a call's messages are not interleaved
	sess     *session
	failures int
	nextDial time.Time

	calls sync.WaitGroup // calls written and not yet waited for

	up     atomic.Bool
	closed atomic.Bool
}

var _ message.Publisher = (*Publisher)(nil)

// NewPublisher checks cfg and returns a Publisher; it connects on the first Publish.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Publisher{cfg: cfg, log: cfg.Logger}, nil
}

// Publish publishes msgs with routing key topic and waits for the broker's confirms. A nil error
// means every message was confirmed. The first message's context ends the call early.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		if p.closed.Load() {
			return ErrClosed
		}
		return nil
	}
	return p.start(msgs[0].Context(), topic, msgs).wait()
}

// confirms is the broker's pending answer to one Publish call.
type confirms struct {
	p       *Publisher
	s       *session
	ctx     context.Context
	cancel  context.CancelFunc
	msgs    []*message.Message
	pending []*amqp091.DeferredConfirmation
	failed  map[int]error
	err     error // the whole call failed before writing (no session, closed)
	cleanup func()
	done    bool
}

// start writes msgs under the publisher lock and returns their pending confirms.
func (p *Publisher) start(ctx context.Context, topic string, msgs []*message.Message) *confirms {
	n := len(msgs)
	c := &confirms{p: p, msgs: msgs}
	if p.closed.Load() {
		c.err = ErrClosed
		return c
	}
	if n == 0 {
		return c
	}
	c.ctx, c.cancel = context.WithCancel(ctx)

	p.mu.Lock()
	if p.closed.Load() {
		p.mu.Unlock()
		c.cancel()
		c.err = ErrClosed
		return c
	}
	s, err := p.session(c.ctx)
	if err != nil {
		p.mu.Unlock()
		c.cancel()
		c.err = err
		return c
	}
	c.s = s
	p.calls.Add(1)
	// The watchdog fires when the broker made no progress (no write accepted, no confirm, for any
	// call on this session) for PublishTimeout, or when ctx ends. It drops the connection:
	// amqp091's I/O ignores contexts, and a write blocks for as long as the broker blocks the
	// connection (resource alarm); closing it fails the write and resolves every pending confirm.
	// The bound is on progress, not on the whole call, so a slow but working broker (a big
	// fan-out, or calls queued behind other calls' confirms) is never cut off and retried forever.
	timeout := p.cfg.PublishTimeout
	var wdMu sync.Mutex
	var wd *time.Timer
	wdMu.Lock()
	wd = time.AfterFunc(timeout, func() {
		idle := time.Since(time.Unix(0, s.progress.Load()))
		if idle >= timeout {
			s.abort(true)
			return
		}
		wdMu.Lock()
		wd.Reset(timeout - idle)
		wdMu.Unlock()
	})
	wdMu.Unlock()
	stopCtx := context.AfterFunc(c.ctx, func() { s.abort(false) })
	c.cleanup = func() {
		wdMu.Lock()
		wd.Stop()
		wdMu.Unlock()
		stopCtx()
	}

	c.pending = make([]*amqp091.DeferredConfirmation, n)
	// The call's messages go out in a few writes (corkConn), not one per message. Uncorked before
	// the lock is released, so nothing of this call waits for the next one.
	s.cork.cork()
	for i, m := range msgs {
		dc, err := s.ch.PublishWithDeferredConfirm(p.cfg.Exchange, topic, false, false, p.marshal(m))
		if err != nil {
			// Nothing after i is sent: the channel or the connection is gone, and the session
			// is replaced as a whole.
			c.failed = make(map[int]error, n-i)
			for j := i; j < n; j++ {
				c.failed[j] = fmt.Errorf("%w: publish: %w", ErrUnavailable, err)
			}
			break
		}
		c.pending[i] = dc
	}
	s.cork.uncork()
	s.progressed()
	p.mu.Unlock()
	return c
}

// wait waits for the broker's confirm of every message of the call. nil means all were confirmed;
// a *PublishError names the others.
func (c *confirms) wait() error {
	if c.done || c.s == nil {
		return c.result()
	}
	c.done = true
	s := c.s
	for i, dc := range c.pending {
		if dc == nil {
			continue
		}
		acked, err := dc.WaitContext(c.ctx)
		s.progressed()
		var ferr error
		switch {
		case err != nil:
			ferr = fmt.Errorf("%w: waiting for confirm: %w", ErrUnavailable, err)
		case !acked && s.stalled.Load():
			ferr = fmt.Errorf("%w: no progress for %s", ErrUnavailable, c.p.cfg.PublishTimeout)
		case !acked && s.closed():
			// amqp091 resolves outstanding confirmations as nacks when the channel closes.
			ferr = fmt.Errorf("%w: channel closed before the confirm", ErrUnavailable)
		case !acked:
			ferr = fmt.Errorf("%w: message %s", ErrNacked, c.msgs[i].UUID)
		}
		if ferr != nil {
			if c.failed == nil {
				c.failed = map[int]error{}
			}
			c.failed[i] = ferr
		}
	}
	c.cleanup()
	if s.closed() || c.ctx.Err() != nil || s.stalled.Load() {
		c.p.mu.Lock()
		if c.p.sess == s {
			c.p.drop("channel closed or publish deadline passed")
		}
		c.p.mu.Unlock()
	}
	if s.aborting.Load() {
		<-s.aborted // finish closing this session before the next call
	}
	c.cancel()
	c.p.calls.Done()
	return c.result()
}

func (c *confirms) result() error {
	if c.err != nil {
		return c.err
	}
	if len(c.failed) > 0 {
		return &PublishError{Failed: c.failed}
	}
	return nil
}

// marshal turns a Watermill message into an AMQP publishing: UUID → MessageId, metadata →
// string headers. The payload is not copied. Frames are transient: the outbox is the durable
// record, and an exclusive queue dies with its instance anyway.
func (p *Publisher) marshal(m *message.Message) amqp091.Publishing {
	var headers amqp091.Table
	if len(m.Metadata) > 0 {
		headers = make(amqp091.Table, len(m.Metadata))
		for k, v := range m.Metadata {
			headers[k] = v
		}
	}
	return amqp091.Publishing{
		Headers:      headers,
		ContentType:  p.cfg.ContentType,
		DeliveryMode: amqp091.Transient,
		MessageId:    m.UUID,
		Body:         m.Payload,
	}
}
