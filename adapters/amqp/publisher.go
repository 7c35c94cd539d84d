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

	"github.com/socialnet/social/outbox/broker"
)

// Publisher is a Watermill message.Publisher on amqp091-go built for fan-out throughput: Publish
// sends all its messages pipelined on a confirm-mode channel and returns once the broker
// confirmed every one of them (or with a *PublishError naming the ones it did not). Compared with
// watermill-amqp v2 (design.md §7) it writes CC as an array of strings, waits for confirms of a
// whole call at once instead of one round trip per message, declares each exchange once per
// connection, and never blocks forever: connecting is lazy with backoff and every wait is bounded.
//
// Calls are written in call order, each message on its lane's channel (PublisherConfig.Lanes; one
// by default, and Publish always uses lane 0); Send lets a caller keep several calls' confirms in
// flight, Publish waits for its own. Call them with many messages.
type Publisher struct {
	cfg PublisherConfig
	log *slog.Logger

	mu       sync.Mutex // held while a call writes: calls keep their order on every lane
	sess     *session
	failures int
	nextDial time.Time

	calls sync.WaitGroup // calls written and not yet waited for

	up     atomic.Bool
	closed atomic.Bool
}

var (
	_ message.Publisher = (*Publisher)(nil)
	// The outbox relay's publishing port: Lanes and Send.
	_ broker.Publisher = (*Publisher)(nil)
)

// NewPublisher checks cfg and returns a Publisher; it connects on the first Publish.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Publisher{cfg: cfg, log: cfg.Logger}, nil
}

// Publish publishes msgs to the exchange named topic and waits for the broker's confirms. A nil
// error means every message was confirmed. The first message's context ends the call early.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		if p.closed.Load() {
			return ErrClosed
		}
		return nil
	}
	return p.start(msgs[0].Context(), topic, len(msgs), func(i int) (int, string, amqp091.Publishing) {
		return 0, msgs[i].Metadata.Get(MetadataRoutingKey), p.marshal(msgs[i])
	}, func(i int) string { return msgs[i].UUID }).Wait()
}

// Outgoing is one message for Send: the fields the feed contract uses, without the metadata map
// and string CC of a Watermill message (the relay's fast path: no per-message map or CC split).
// It is the outbox's broker.Message: Lane picks the channel (modulo PublisherConfig.Lanes);
// messages of one lane keep their order, messages of different lanes may reach a queue in any
// order.
type Outgoing = broker.Message

// Lanes is the number of channels Send spreads messages over (PublisherConfig.Lanes).
func (p *Publisher) Lanes() int { return p.cfg.Lanes }

// Send writes msgs to the exchange named topic in order and returns without waiting for the
// broker: Confirms.Wait does. Calls are written in call order, so a caller can keep several calls
// in flight (pipelined confirms across calls) and still keep its order within each lane. Every
// Confirms must be waited for (Close waits for them). ctx ends the wait early (the connection is
// dropped: amqp091 I/O ignores contexts).
func (p *Publisher) Send(ctx context.Context, topic string, msgs []Outgoing) broker.Confirms {
	return p.start(ctx, topic, len(msgs), func(i int) (int, string, amqp091.Publishing) {
		m := &msgs[i]
		var h amqp091.Table
		if len(m.CC) > 0 {
			h = amqp091.Table{HeaderCC: m.CC}
		}
		return m.Lane, m.RoutingKey, amqp091.Publishing{Headers: h, ContentType: p.cfg.ContentType,
			DeliveryMode: amqp091.Transient, MessageId: m.MessageID, Body: m.Body}
	}, func(i int) string { return msgs[i].MessageID })
}

// Confirms is the broker's pending answer to one Send or Publish call.
type Confirms struct {
	p       *Publisher
	s       *session
	ctx     context.Context
	cancel  context.CancelFunc
	ids     func(int) string
	pending []*amqp091.DeferredConfirmation
	failed  map[int]error
	err     error // the whole call failed before writing (no session, closed)
	cleanup func()
	done    bool
}

// start writes n messages under the publisher lock (calls keep their order on every lane) and
// returns their pending confirms.
func (p *Publisher) start(ctx context.Context, topic string, n int, pub func(int) (int, string, amqp091.Publishing), ids func(int) string) *Confirms {
	c := &Confirms{p: p, ids: ids}
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
	s, err := p.session(c.ctx, topic)
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
	for i := range n {
		lane, key, msg := pub(i)
		ch := s.chs[uint(lane)%uint(len(s.chs))]
		dc, err := ch.PublishWithDeferredConfirm(topic, key, false, false, msg)
		if err != nil {
			// Nothing after i is sent: a channel or the connection is gone, and the session
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

// Wait waits for the broker's confirm of every message of the call. nil means all were confirmed;
// a *PublishError names the others. Wait may be called more than once.
func (c *Confirms) Wait() error {
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
			ferr = fmt.Errorf("%w: message %s", ErrNacked, c.ids(i))
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

func (c *Confirms) result() error {
	if c.err != nil {
		return c.err
	}
	if len(c.failed) > 0 {
		return &PublishError{Failed: c.failed}
	}
	return nil
}

// marshal turns a Watermill message into an AMQP publishing: UUID → MessageId, MetadataCC → CC
// array, other metadata → string headers. The payload is not copied.
func (p *Publisher) marshal(m *message.Message) amqp091.Publishing {
	var headers amqp091.Table
	for k, v := range m.Metadata {
		switch k {
		case MetadataRoutingKey:
			continue
		case MetadataCC:
			if v != "" {
				if headers == nil {
					headers = amqp091.Table{}
				}
				headers[HeaderCC] = splitCC(v)
			}
			continue
		}
		if headers == nil {
			headers = amqp091.Table{}
		}
		headers[k] = v
	}
	return amqp091.Publishing{
		Headers:      headers,
		ContentType:  p.cfg.ContentType,
		DeliveryMode: amqp091.Transient,
		MessageId:    m.UUID,
		Body:         m.Payload,
	}
}

// splitCC splits a comma-separated id list into the []interface{} of strings amqp091 encodes as
// an AMQP array. The substrings share the input's memory.
func splitCC(s string) []interface{} {
	n := 1
	for i := 0; i < len(s); i++ {
		if s[i] == ',' {
			n++
		}
	}
	out := make([]interface{}, 0, n)
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}
