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

	"github.com/ThreeDotsLabs/watermill/message"
	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/socialnet/social/internal/setting"
)

// SubscriberConfig configures a Subscriber. Dialer is required.
type SubscriberConfig struct {
	// Dialer connects to one of the brokers (failover between cluster nodes).
	Dialer *Dialer
	// Exchange is the feed exchange (durable, direct); the subscriber declares it too. Default
	// "social.feed".
	Exchange string
	// QueuePrefix starts the queue's name; the topic (the instance's id) follows. Default
	// "social.realtime.".
	QueuePrefix string
	// OnConnect is called after every (re)connect has declared the queue and its binding and
	// before the first delivery of that connection: frames published while there was no queue
	// were dropped by the broker (unroutable), so the realtime fills its open sockets' gaps from
	// PostgreSQL. Called on the subscriber's goroutine; it must not block for long.
	OnConnect func()
	// Logger; nil discards.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the reconnect delay (doubling with jitter). Defaults 100ms, 5s.
	MinBackoff, MaxBackoff time.Duration
	// Prefetch bounds the deliveries sent to this subscriber and not yet acknowledged. Default 256.
	Prefetch int
}

func (c *SubscriberConfig) setDefaults() {
	if c.Exchange == "" {
		c.Exchange = DefaultExchange
	}
	if c.QueuePrefix == "" {
		c.QueuePrefix = "social.realtime."
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	setting.Default(&c.MinBackoff, 100*time.Millisecond)
	setting.Default(&c.MaxBackoff, 5*time.Second)
	setting.Default(&c.Prefetch, 256)
}

// ErrNotConnected is Ready's answer while the subscriber has no queue on a live connection.
var ErrNotConnected = errors.New("rabbitmq: subscriber not connected")

// Subscriber is a Watermill message.Subscriber for one realtime instance: Subscribe(ctx, id)
// declares an exclusive, auto-delete queue named QueuePrefix+id, bound to the exchange with the
// key id only, and delivers its messages until ctx ends or Close. It reconnects with backoff
// forever, on the next node of a cluster when one fails, declaring the queue and binding again
// (OnConnect tells the instance to fill its sockets' gaps); no socket is closed for it.
//
// Each Watermill message must be acked (or nacked) before the next one is delivered, which keeps
// the position order; the AMQP delivery is acknowledged then, whatever the handler said (a frame
// is a transient notification: if this process dies with frames in flight its sockets die with
// it, and their clients resume from PostgreSQL). Manual acknowledgement is what makes Prefetch
// bound the deliveries held here: with auto-ack the broker ignores it and amqp091-go buffers
// whatever arrives, without bound, while the handler (or a gap fill in OnConnect) is busy.
type Subscriber struct {
	cfg       SubscriberConfig
	ready     atomic.Bool
	closing   chan struct{}
	closeOnce sync.Once
	running   sync.WaitGroup
}

var _ message.Subscriber = (*Subscriber)(nil)

// NewSubscriber returns a Subscriber.
func NewSubscriber(cfg SubscriberConfig) (*Subscriber, error) {
	cfg.setDefaults()
	if cfg.Dialer == nil {
		return nil, errors.New("amqp subscriber: Dialer is required")
	}
	return &Subscriber{cfg: cfg, closing: make(chan struct{})}, nil
}

// Ready reports whether the queue exists on a live connection (for /readyz).
func (s *Subscriber) Ready(context.Context) error {
	if !s.ready.Load() {
		return ErrNotConnected
	}
	return nil
}

// Subscribe starts consuming topic's queue; the channel closes when ctx ends or on Close.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	select {
	case <-s.closing:
		return nil, errors.New("amqp subscriber: closed")
	default:
	}
	out := make(chan *message.Message)
	s.running.Add(1)
	go func() {
		defer s.running.Done()
		defer close(out)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-s.closing:
				cancel()
			case <-ctx.Done():
			}
		}()
		s.run(ctx, topic, out)
	}()
	return out, nil
}

// Close stops every subscription and waits for them to end.
func (s *Subscriber) Close() error {
	s.closeOnce.Do(func() { close(s.closing) })
	s.running.Wait()
	return nil
}

// run connects, consumes and reconnects with backoff until ctx ends.
func (s *Subscriber) run(ctx context.Context, topic string, out chan<- *message.Message) {
	backoff := s.cfg.MinBackoff
	for {
		up, err := s.session(ctx, topic, out)
		if ctx.Err() != nil {
			return
		}
		if up {
			backoff = s.cfg.MinBackoff
		}
		s.cfg.Logger.Warn("rabbitmq subscriber disconnected; reconnecting", slog.Any("err", err), slog.Duration("backoff", backoff))
		// Jitter so that many instances do not reconnect in lockstep after a broker restart.
		d := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		backoff = min(backoff*2, s.cfg.MaxBackoff)
	}
}

// session runs one connection; up says whether the queue was set up before it ended.
func (s *Subscriber) session(ctx context.Context, topic string, out chan<- *message.Message) (up bool, err error) {
	conn, addr, err := s.cfg.Dialer.Dial(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	defer s.ready.Store(false)
	queue := s.cfg.QueuePrefix + topic
	deliveries, err := s.setup(conn, queue, topic)
	if err != nil {
		return false, err
	}
	s.cfg.Logger.Info("rabbitmq subscriber connected", slog.String("broker", addr), slog.String("queue", queue))
	s.ready.Store(true)
	if s.cfg.OnConnect != nil {
		s.cfg.OnConnect()
	}
	closed := conn.NotifyClose(make(chan *amqp091.Error, 1))
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case e := <-closed:
			if e == nil {
				return true, errors.New("connection closed")
			}
			return true, e
		case d, ok := <-deliveries:
			if !ok {
				return true, errors.New("delivery channel closed")
			}
			msg := message.NewMessage(d.MessageId, d.Body)
			msg.SetContext(ctx)
			select {
			case out <- msg:
			case <-ctx.Done():
				return true, nil
			}
			select {
			case <-msg.Acked():
			case <-msg.Nacked():
				// Nothing to redeliver: the frame is transient, and a handler that cannot take
				// it has logged why.
			case <-ctx.Done():
				return true, nil
			}
			if err := d.Ack(false); err != nil {
				return true, fmt.Errorf("ack: %w", err)
			}
		}
	}
}

// setup declares the exchange, the instance's queue and its one binding, and starts consuming.
func (s *Subscriber) setup(conn *amqp091.Connection, queue, key string) (<-chan amqp091.Delivery, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	if err := ch.ExchangeDeclare(s.cfg.Exchange, exchangeKind, true, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("declare exchange %s: %w", s.cfg.Exchange, err)
	}
	// Exclusive + auto-delete: the queue lives and dies with this connection, so a crashed
	// instance leaves nothing behind and no two instances share a queue.
	if _, err := ch.QueueDeclare(queue, false, true, true, false, nil); err != nil {
		return nil, fmt.Errorf("declare queue %s: %w", queue, err)
	}
	if err := ch.QueueBind(queue, key, s.cfg.Exchange, false, nil); err != nil {
		return nil, fmt.Errorf("bind queue %s: %w", queue, err)
	}
	if err := ch.Qos(s.cfg.Prefetch, 0, false); err != nil {
		return nil, fmt.Errorf("qos: %w", err)
	}
	deliveries, err := ch.Consume(queue, "", false, true, false, false, nil)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", queue, err)
	}
	return deliveries, nil
}
