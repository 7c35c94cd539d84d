package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Message metadata read by Publisher. Any other metadata key becomes a string header.
const (
	// MetadataRoutingKey is the routing key of the message (the first follower's user id).
	MetadataRoutingKey = "amqp_routing_key"
	// MetadataCC holds the other recipients, comma-separated (user ids contain no commas). The
	// publisher writes them as the CC header, an array of strings, as sender-selected
	// distribution requires (a plain string header would be ignored by the broker).
	MetadataCC = "amqp_cc"
)

// Errors of Publish, for errors.Is. A PublishError says which messages each applies to.
var (
	// ErrNacked: the broker refused this message (basic.nack), e.g. a queue it routes to is full
	// with overflow reject-publish. Retrying the same message soon will likely fail again.
	ErrNacked = errors.New("rabbitmq refused the message (nack)")
	// ErrUnavailable: no confirm because the broker could not be reached, the connection or
	// channel closed, or the deadline passed. The message may or may not have been routed
	// (at-least-once: publish it again).
	ErrUnavailable = errors.New("rabbitmq unavailable")
	// ErrClosed: Publish after Close.
	ErrClosed = errors.New("publisher closed")
)

// PublishError reports the messages of one Publish call that were not confirmed. Every message
// not listed in Failed was confirmed (acked) by the broker.
type PublishError struct {
	// Failed maps the index of a message in the Publish call to why it failed (wrapping
	// ErrNacked or ErrUnavailable).
	Failed map[int]error
}

func (e *PublishError) Error() string {
	var first error
	for _, err := range e.Failed {
		first = err
		break
	}
	return fmt.Sprintf("%d message(s) not confirmed, e.g.: %v", len(e.Failed), first)
}

// Unwrap returns the distinct causes, so errors.Is(err, ErrNacked) works.
func (e *PublishError) Unwrap() []error {
	var out []error
	seen := map[error]bool{}
	for _, err := range e.Failed {
		if !seen[err] {
			seen[err] = true
			out = append(out, err)
		}
	}
	return out
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// Dialer connects to the broker, failing over between the configured nodes. Required.
	Dialer *Dialer
	// ExchangeKind is the kind each topic (exchange) is declared with on connect; default direct.
	// Exchanges are durable and not auto-deleted.
	ExchangeKind string
	// ContentType of every message; default application/json.
	ContentType string
	// PublishTimeout is how long Publish waits without progress (a write accepted or a confirm
	// received) before it drops the connection and fails the unconfirmed messages with
	// ErrUnavailable. Default 30s. The first message's context also ends the call.
	PublishTimeout time.Duration
	// ReconnectBackoffMin and ReconnectBackoffMax bound the wait between failed connection
	// attempts (doubling). Within the wait Publish fails at once with ErrUnavailable instead of
	// blocking: the caller keeps its backlog and retries. Defaults 100ms and 2s (a dial to a down
	// node fails fast; a low cap reconnects soon after the broker is back).
	ReconnectBackoffMin, ReconnectBackoffMax time.Duration
	// Logger receives connection events; default slog.Default().
	Logger *slog.Logger
}

func (c *PublisherConfig) setDefaults() {
	if c.ExchangeKind == "" {
		c.ExchangeKind = ExchangeKind
	}
	if c.ContentType == "" {
		c.ContentType = "application/json"
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 30 * time.Second
	}
	if c.ReconnectBackoffMin == 0 {
		c.ReconnectBackoffMin = 100 * time.Millisecond
	}
	if c.ReconnectBackoffMax == 0 {
		c.ReconnectBackoffMax = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every invalid field.
func (c PublisherConfig) Validate() error {
	var errs []error
	if c.Dialer == nil {
		errs = append(errs, errors.New("amqp publisher: Dialer is required"))
	}
	if c.PublishTimeout < 0 || c.ReconnectBackoffMin < 0 || c.ReconnectBackoffMax < c.ReconnectBackoffMin {
		errs = append(errs, errors.New("amqp publisher: timeouts must be positive and ReconnectBackoffMax >= ReconnectBackoffMin"))
	}
	return errors.Join(errs...)
}

// Publisher is a Watermill message.Publisher on amqp091-go built for fan-out throughput: Publish
// sends all its messages pipelined on one confirm-mode channel and returns once the broker
// confirmed every one of them (or with a *PublishError naming the ones it did not). Compared with
// watermill-amqp v2 (design.md §7) it writes CC as an array of strings, waits for confirms of a
// whole call at once instead of one round trip per message, declares each exchange once per
// connection, and never blocks forever: connecting is lazy with backoff and every wait is bounded.
//
// Calls are written in call order on one channel; Send lets a caller keep several calls' confirms
// in flight, Publish waits for its own. Call them with many messages.
type Publisher struct {
	cfg PublisherConfig
	log *slog.Logger

	mu       sync.Mutex // held by Publish: one channel, calls in order
	sess     *session
	failures int
	nextDial time.Time

	calls sync.WaitGroup // calls written and not yet waited for

	up     atomic.Bool
	closed atomic.Bool
}

var _ message.Publisher = (*Publisher)(nil)

// session is one connection with its confirm-mode channel.
type session struct {
	conn     *amqp091.Connection
	ch       *amqp091.Channel
	addr     string
	declared map[string]bool

	progress  atomic.Int64 // unix nanos of the last write accepted or confirm received
	stalled   atomic.Bool  // aborted for lack of progress
	aborting  atomic.Bool
	abortOnce sync.Once
	aborted   chan struct{} // closed once an abort closed the connection
}

func (s *session) progressed() { s.progress.Store(time.Now().UnixNano()) }

// abort closes the connection (failing every write and pending confirm on it) once.
func (s *session) abort(stalled bool) {
	s.abortOnce.Do(func() {
		if stalled {
			s.stalled.Store(true)
		}
		s.aborting.Store(true)
		defer close(s.aborted)
		_ = s.conn.CloseDeadline(time.Now().Add(time.Second))
	})
}

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
	return p.start(msgs[0].Context(), topic, len(msgs), func(i int) (string, amqp091.Publishing) {
		return msgs[i].Metadata.Get(MetadataRoutingKey), p.marshal(msgs[i])
	}, func(i int) string { return msgs[i].UUID }).Wait()
}

// Outgoing is one message for Send: the fields the feed contract uses, without the metadata map
// and string CC of a Watermill message (the relay's fast path: no per-message map or CC split).
type Outgoing struct {
	MessageID  string
	RoutingKey string
	// CC is the other recipients as the AMQP array of strings; nil for none. Send only reads it,
	// so one slice may be shared by every message to the same followers.
	CC   []interface{}
	Body []byte
}

// Send writes msgs to the exchange named topic in order and returns without waiting for the
// broker: Confirms.Wait does. Calls are written in call order on one channel, so a caller can keep
// several calls in flight (pipelined confirms across calls) and still keep its order. Every
// Confirms must be waited for (Close waits for them). ctx ends the wait early (the connection is
// dropped: amqp091 I/O ignores contexts).
func (p *Publisher) Send(ctx context.Context, topic string, msgs []Outgoing) *Confirms {
	return p.start(ctx, topic, len(msgs), func(i int) (string, amqp091.Publishing) {
		m := &msgs[i]
		var h amqp091.Table
		if len(m.CC) > 0 {
			h = amqp091.Table{HeaderCC: m.CC}
		}
		return m.RoutingKey, amqp091.Publishing{Headers: h, ContentType: p.cfg.ContentType,
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

// start writes n messages under the publisher lock (one channel: calls keep their order) and
// returns their pending confirms.
func (p *Publisher) start(ctx context.Context, topic string, n int, pub func(int) (string, amqp091.Publishing), ids func(int) string) *Confirms {
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
	for i := range n {
		key, msg := pub(i)
		dc, err := s.ch.PublishWithDeferredConfirm(topic, key, false, false, msg)
		if err != nil {
			// Nothing after i was sent: the channel is gone.
			c.failed = make(map[int]error, n-i)
			for j := i; j < n; j++ {
				c.failed[j] = fmt.Errorf("%w: publish: %w", ErrUnavailable, err)
			}
			break
		}
		c.pending[i] = dc
		s.progressed()
	}
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
		case !acked && s.ch.IsClosed():
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
	if s.ch.IsClosed() || c.ctx.Err() != nil || s.stalled.Load() {
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

// session returns the live session with topic declared, connecting if needed. Within the backoff
// after a failed attempt it fails at once: the caller keeps its messages and retries later.
func (p *Publisher) session(ctx context.Context, topic string) (*session, error) {
	if p.sess != nil && (p.sess.ch.IsClosed() || p.sess.conn.IsClosed()) {
		p.drop("connection lost")
	}
	if p.sess == nil {
		if wait := time.Until(p.nextDial); wait > 0 {
			return nil, fmt.Errorf("%w: reconnecting in %s", ErrUnavailable, wait.Round(time.Millisecond))
		}
		s, err := p.connect(ctx)
		if err != nil {
			p.failures++
			backoff := p.cfg.ReconnectBackoffMin << min(p.failures-1, 16)
			p.nextDial = time.Now().Add(min(backoff, p.cfg.ReconnectBackoffMax))
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		p.failures = 0
		p.sess = s
		p.up.Store(true)
		p.log.Info("amqp publisher connected", slog.String("broker", s.addr))
	}
	if !p.sess.declared[topic] {
		if err := p.sess.ch.ExchangeDeclare(topic, p.cfg.ExchangeKind, true, false, false, false, nil); err != nil {
			p.drop("declare exchange failed")
			return nil, fmt.Errorf("%w: declare exchange %q: %w", ErrUnavailable, topic, err)
		}
		p.sess.declared[topic] = true
	}
	return p.sess, nil
}

func (p *Publisher) connect(ctx context.Context) (*session, error) {
	conn, addr, err := p.cfg.Dialer.Dial(ctx)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		_ = conn.CloseDeadline(time.Now().Add(time.Second))
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = conn.CloseDeadline(time.Now().Add(time.Second))
		return nil, fmt.Errorf("confirm mode: %w", err)
	}
	s := &session{conn: conn, ch: ch, addr: addr, declared: map[string]bool{}, aborted: make(chan struct{})}
	s.progressed()
	return s, nil
}

// drop closes the current session (if any); the next Publish reconnects.
func (p *Publisher) drop(why string) {
	if p.sess == nil {
		return
	}
	p.log.Warn("amqp publisher disconnected", slog.String("broker", p.sess.addr), slog.String("reason", why))
	_ = p.sess.conn.CloseDeadline(time.Now().Add(time.Second))
	p.sess = nil
	p.up.Store(false)
}

// Ready reports whether the publisher has a live connection, connecting if it is idle and
// disconnected (for /readyz). It never waits behind a running Publish.
func (p *Publisher) Ready(ctx context.Context) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if !p.mu.TryLock() {
		if p.up.Load() {
			return nil
		}
		return fmt.Errorf("%w: reconnecting", ErrUnavailable)
	}
	defer p.mu.Unlock()
	if p.sess != nil && !p.sess.ch.IsClosed() {
		return nil
	}
	p.sess = nil
	p.up.Store(false)
	if wait := time.Until(p.nextDial); wait > 0 {
		return fmt.Errorf("%w: reconnecting in %s", ErrUnavailable, wait.Round(time.Millisecond))
	}
	s, err := p.connect(ctx)
	if err != nil {
		p.failures++
		p.nextDial = time.Now().Add(min(p.cfg.ReconnectBackoffMin<<min(p.failures-1, 16), p.cfg.ReconnectBackoffMax))
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	p.failures = 0
	p.sess = s
	p.up.Store(true)
	return nil
}

// Close waits for running calls (each bounded by its progress watchdog) and closes the connection.
func (p *Publisher) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.calls.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sess != nil {
		err := p.sess.conn.CloseDeadline(time.Now().Add(5 * time.Second))
		p.sess = nil
		p.up.Store(false)
		if err != nil && !errors.Is(err, amqp091.ErrClosed) {
			return fmt.Errorf("close amqp publisher: %w", err)
		}
	}
	return nil
}
