package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	amqp091 "github.com/rabbitmq/amqp091-go"
)

// Delivery is one feed message as the realtime hub needs it: who it is for and the frame bytes,
// exactly as the dispatcher encoded them (never re-encoded here).
type Delivery struct {
	// Recipients are the routing key plus the CC header: the users whose local sockets get Body.
	// The broker delivers one copy per queue even when several of them are bound here.
	Recipients []string
	// Body is the JSON of domain.FeedFrame.
	Body []byte
	// MessageID is the event id.
	MessageID string
}

// ConsumerConfig configures a Consumer. Dialer, Exchange and Handle are required.
type ConsumerConfig struct {
	// Dialer connects to one of the brokers (failover between cluster nodes).
	Dialer *Dialer
	// Exchange is the feed exchange (durable, direct); the consumer declares it too.
	Exchange string
	// QueuePrefix starts the client-generated queue name; a random UUID follows. Default
	// "social.realtime.".
	QueuePrefix string
	// Handle receives every delivery, on the consumer goroutine. It must not block: the hub only
	// enqueues into bounded per-socket queues.
	Handle func(Delivery)
	// OnReconnect is called after each (re)connect has restored the queue and every binding, and
	// before the consumer is Ready, i.e. before any new Bind can succeed: every socket the hub
	// holds at that moment was opened on an older session (or was refused), none on this one.
	// Frames published while the connection was down are lost for this instance (the queue died
	// with it): the hub tells those clients so they resume with ?since=. A socket bound on the new
	// session is never told, so a client that has not seen a frame yet (and has no position to
	// resume from) is not cut.
	OnReconnect func()
	// Logger; nil discards.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the reconnect delay (doubling with jitter). Defaults 100ms, 10s.
	MinBackoff, MaxBackoff time.Duration
	// Prefetch bounds unprocessed deliveries in flight to this consumer. Default 1024.
	Prefetch int
}

func (c *ConsumerConfig) setDefaults() {
	if c.QueuePrefix == "" {
		c.QueuePrefix = "social.realtime."
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 1024
	}
}

// Validate reports missing required fields.
func (c *ConsumerConfig) Validate() error {
	var errs []error
	if c.Dialer == nil {
		errs = append(errs, errors.New("consumer: Dialer is required"))
	}
	if c.Exchange == "" {
		errs = append(errs, errors.New("consumer: Exchange is required"))
	}
	if c.Handle == nil {
		errs = append(errs, errors.New("consumer: Handle is required"))
	}
	return errors.Join(errs...)
}

// ErrNotConnected is returned by Ready while the consumer has no broker connection.
var ErrNotConnected = errors.New("rabbitmq: consumer not connected")

// Consumer owns this realtime instance's one exclusive, auto-delete queue on the feed exchange
// and its bindings (one per user connected here, see consumer_bindings.go). The queue name is
// generated once and reused after a reconnect, so logs and the broker's listings stay readable.
type Consumer struct {
	cfg   ConsumerConfig
	queue string

	// mu guards everything below but connected; no broker round trip runs under it.
	mu          sync.Mutex
	bindings    map[string]*binding // users wanted, bound or busy
	bindQueue   []string            // users waiting for the bind worker
	unbindQueue []string            // users waiting for the unbind worker
	gen         uint64              // bumped when a session ends: its workers' late results are ignored
	conn        *amqp091.Connection // current connection, nil while disconnected
	bindWake    chan struct{}
	unbindWake  chan struct{}
	// connected: the session's queue exists and the workers run (set with conn, under mu).
	connected atomic.Bool
	// ready: connected, and OnReconnect has run; only then does Bind add a binding (see Bind).
	// Read without mu by Ready, which must answer while a long restore runs.
	ready atomic.Bool
}

// NewConsumer returns a Consumer; Run connects it.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Consumer{cfg: cfg, queue: cfg.QueuePrefix + uuid.NewString(), bindings: make(map[string]*binding),
		bindWake: make(chan struct{}, 1), unbindWake: make(chan struct{}, 1)}, nil
}

// QueueName is the instance's queue.
func (c *Consumer) QueueName() string { return c.queue }

// Ready reports whether the consumer currently has its queue and bindings on a live connection
// and accepts new bindings (Bind answers ErrNotConnected otherwise).
func (c *Consumer) Ready(context.Context) error {
	if !c.ready.Load() {
		return ErrNotConnected
	}
	return nil
}

// dropConnectionLocked handles a failed binding RPC: the broker closed the channel. We close the
// whole connection so Run reconnects and restores every wanted binding.
func (c *Consumer) dropConnectionLocked(err error) {
	c.cfg.Logger.Warn("rabbitmq binding failed; reconnecting", slog.Any("err", err))
	c.ready.Store(false)
	c.connected.Store(false)
	if c.conn != nil {
		_ = c.conn.Close()
	}
}

// Run connects, consumes and reconnects with backoff until ctx ends. It returns nil on ctx end.
func (c *Consumer) Run(ctx context.Context) error {
	backoff := c.cfg.MinBackoff
	for {
		err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errSessionWasUp) {
			backoff = c.cfg.MinBackoff
		}
		c.cfg.Logger.Warn("rabbitmq consumer disconnected; reconnecting", slog.Any("err", err), slog.Duration("backoff", backoff))
		// Jitter so that many instances do not reconnect in lockstep after a broker restart.
		d := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
}

var errSessionWasUp = errors.New("connection lost")

// session runs one connection: topology, bindings, consume. It returns errSessionWasUp when the
// connection had been fully set up before it was lost.
func (c *Consumer) session(ctx context.Context) error {
	conn, addr, err := c.cfg.Dialer.Dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	done := make(chan struct{})
	defer func() {
		close(done) // stops this session's binding workers
		c.mu.Lock()
		c.ready.Store(false)
		c.connected.Store(false)
		c.conn = nil
		c.resetLocked()
		c.mu.Unlock()
	}()
	deliveries, err := c.setup(conn, done)
	if err != nil {
		return err
	}
	c.cfg.Logger.Info("rabbitmq consumer connected", slog.String("broker", addr), slog.String("queue", c.queue))
	// Called after every setup, the first included, and BEFORE ready: sockets opened on the
	// previous session lost their frames with its queue and must resume. Bind refuses while not
	// ready, so no socket bound on this session exists yet for the hub to cut by mistake (issue
	// #11: the hub used to close with 1012 sockets that had been bound, upgraded and counted
	// after Ready turned true, and a client with no frame yet had no position to resume from).
	if c.cfg.OnReconnect != nil {
		c.cfg.OnReconnect()
	}
	c.mu.Lock()
	if c.connected.Load() { // a binding RPC may have failed meanwhile (dropConnectionLocked)
		c.ready.Store(true)
	}
	c.mu.Unlock()
	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-closed:
			if e == nil {
				return errSessionWasUp
			}
			return fmt.Errorf("%w: %w", errSessionWasUp, e)
		case d, ok := <-deliveries:
			if !ok {
				return errSessionWasUp
			}
			c.cfg.Handle(Delivery{Recipients: recipients(d), Body: d.Body, MessageID: d.MessageId})
		}
	}
}

// setup declares the exchange and the queue, restores every wanted binding, starts consuming and
// then the binding workers (until done closes).
func (c *Consumer) setup(conn *amqp091.Connection, done <-chan struct{}) (<-chan amqp091.Delivery, error) {
	consumeCh, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := consumeCh.ExchangeDeclare(c.cfg.Exchange, ExchangeKind, true, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("declare exchange %s: %w", c.cfg.Exchange, err)
	}
	// Exclusive + auto-delete: the queue lives and dies with this instance's connection, so a
	// crashed instance leaves nothing behind and no two instances share a queue. Frames are
	// transient (the PostgreSQL outbox is the durable record; resume reads it).
	if _, err := consumeCh.QueueDeclare(c.queue, false, true, true, false, nil); err != nil {
		return nil, fmt.Errorf("declare queue %s: %w", c.queue, err)
	}
	if err := consumeCh.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return nil, fmt.Errorf("qos: %w", err)
	}
	// One channel per worker: a failed RPC closes its channel, never the consumer's.
	bindCh, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open binding channel: %w", err)
	}
	unbindChs := make([]*amqp091.Channel, unbindChannels)
	for i := range unbindChs {
		if unbindChs[i], err = conn.Channel(); err != nil {
			return nil, fmt.Errorf("open unbinding channel: %w", err)
		}
	}
	if err := c.restore(bindCh); err != nil {
		return nil, err
	}
	// Auto-ack: a frame is a transient notification. If this process dies with frames in flight,
	// they are lost for its sockets, which die with it too; the clients reconnect with ?since= and
	// read what they missed from PostgreSQL. Manual acks would buy nothing but a round trip.
	deliveries, err := consumeCh.Consume(c.queue, "", true, true, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", c.queue, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn = conn
	gen := c.gen
	// Wishes recorded (not connected yet) while the restore ran, for users it did not cover.
	for u, b := range c.bindings {
		if !b.busy && (b.refs > 0) != b.bound {
			c.scheduleLocked(u, b)
		}
	}
	go c.bindWorker(done, gen, bindCh)
	for _, ch := range unbindChs {
		go c.unbindWorker(done, gen, ch)
	}
	c.connected.Store(true)
	return deliveries, nil
}

// recipients is the routing key plus the CC header (an array of strings, see HeaderCC).
func recipients(d amqp091.Delivery) []string {
	cc, _ := d.Headers[HeaderCC].([]interface{})
	out := make([]string, 1, 1+len(cc)) // one allocation: appending grew it ten times per message
	out[0] = d.RoutingKey
	for _, v := range cc {
		if s, ok := v.(string); ok && s != d.RoutingKey {
			out = append(out, s)
		}
	}
	return out
}
