package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	amqpadapter "github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/outbox"
)

// runDispatcher relays the outbox to RabbitMQ until ctx ends (SIGINT/SIGTERM), serving /healthz,
// /readyz and /metrics on DISPATCHER_ADDR. It refuses an outdated schema.
func (a *app) runDispatcher(ctx context.Context) error {
	pool, err := a.openPool(ctx, true)
	if err != nil {
		return err
	}
	defer pool.Close()
	reg := newRegistry()
	run, ready, err := a.dispatcherComponent(pool, reg)
	if err != nil {
		return err
	}
	mux := a.opsMux(reg, pingDB(pool), ready)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return runTogether(ctx, cancel,
		func(ctx context.Context) error { return a.serve(ctx, "dispatcher", a.cfg.DispatcherAddr, mux) },
		run)
}

// dispatcherGCPercent is `social dispatcher`'s GOGC unless the environment sets one. The
// dispatcher's live heap is about 1 MB, so at Go's default (100) it collected at the 4 MB floor:
// 23 collections a second at a steady 100 posts/s of 1,000 followers, about half of the process's
// CPU, because amqp091-go encodes a 1,000-key CC header (37 KB) with some ten times its size in
// short-lived buffers. At 400 the heap stays near 16 MB and the dispatcher's CPU fell by a third
// (docs/performance.md). `social all` keeps the default: there the realtime's sockets are the heap.
const dispatcherGCPercent = 400

// relaxDispatcherGC sets dispatcherGCPercent unless environ (the process environment, which the
// runtime read GOGC from) sets GOGC.
func relaxDispatcherGC(environ map[string]string) {
	if _, set := environ["GOGC"]; !set {
		debug.SetGCPercent(dispatcherGCPercent)
	}
}

// errChoosingShape is /readyz's answer while the dispatcher waits for its first broker connection.
var errChoosingShape = errors.New("dispatcher: waiting for the broker (its version chooses the message shape)")

// dispatcherComponent builds the relay (also used by `all`): run connects to the broker, chooses
// the message shape by its version (chooseShape), then relays until ctx ends and closes the
// publisher; ready reports whether the relay runs and the broker is reachable, for /readyz. The
// backlog gauges of outbox status are registered too.
//
// The shape is chosen once, on the first connection, and kept for the life of the process: the
// relay takes it at construction. A reconnect that reaches a node whose version would choose
// another shape (a cluster in a rolling upgrade) is logged as a warning; restart the dispatcher
// after the upgrade to choose again (docs/operations.md).
func (a *app) dispatcherComponent(pool *pgxpool.Pool, reg prometheus.Registerer) (run func(context.Context) error, ready func(context.Context) error, err error) {
	urls, err := amqpadapter.ParseURLs(a.cfg.AMQPURL)
	if err != nil {
		return nil, nil, err
	}
	log := a.log.With(slog.String("component", "dispatcher"))
	var chosen atomic.Pointer[amqpadapter.MessageShape]
	override := a.cfg.RelayFollowersPerMessage
	pub, err := amqpadapter.NewPublisher(amqpadapter.PublisherConfig{Dialer: amqpadapter.NewDialer(urls),
		Lanes: a.cfg.RelayPublishLanes, Logger: log,
		OnConnect: func(b amqpadapter.Broker) {
			cur := chosen.Load()
			if cur == nil {
				return // the first connection: run chooses
			}
			if now := chooseShape(override, b); now.FollowersPerMessage != cur.FollowersPerMessage {
				log.Warn("reconnected to a broker whose version would choose another message shape; keeping the one chosen at start (restart the dispatcher to choose again)",
					slog.String("broker", b.Addr), slog.String("broker_version", b.Version),
					slog.Int("followers_per_message", cur.FollowersPerMessage),
					slog.Int("followers_per_message_for_this_broker", now.FollowersPerMessage))
			}
		}})
	if err != nil {
		return nil, nil, err
	}
	// Big fan-outs' later pages go on a connection of their own, so that their backlog in the
	// broker and in the TCP stream never delays other authors' posts (outbox/emit.go). Its
	// connections reach the same brokers; the message shape is chosen from the main one's.
	bulk, err := amqpadapter.NewPublisher(amqpadapter.PublisherConfig{Dialer: amqpadapter.NewDialer(urls),
		Lanes: a.cfg.RelayPublishLanes, Logger: log.With(slog.String("publisher", "bulk"))})
	if err != nil {
		return nil, nil, err
	}
	if err := reg.Register(outbox.NewStatusCollector(pool, 0, log)); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, nil, err
		}
	}
	run = func(ctx context.Context) error {
		defer func() {
			for _, p := range []*amqpadapter.Publisher{pub, bulk} {
				if err := p.Close(); err != nil {
					log.Warn("close publisher", slog.Any("err", err))
				}
			}
		}()
		b, err := awaitBroker(ctx, pub, log)
		if err != nil {
			if ctx.Err() != nil {
				return nil // shut down before the broker answered: nothing was claimed
			}
			return err
		}
		shape := chooseShape(override, b)
		relay, err := outbox.NewRelay(outbox.Config{
			Pool:            pool,
			Publisher:       pub,
			BulkPublisher:   bulk,
			InlineFollowers: a.cfg.RelayInlineFollowers,
			Exchange:        a.cfg.AMQPExchange,
			PageSize:        shape.FollowersPerMessage,
			Logger:          log,
			Registerer:      reg,
		})
		if err != nil {
			return err
		}
		log.Info("dispatcher started", slog.String("exchange", a.cfg.AMQPExchange),
			slog.String("broker", b.Addr), slog.String("broker_version", b.String()),
			slog.Int("followers_per_message", shape.FollowersPerMessage), slog.String("message_shape", shape.Reason))
		if shape.Warning != "" {
			log.Warn(shape.Warning, slog.String("broker_version", b.String()),
				slog.Int("followers_per_message", shape.FollowersPerMessage))
		}
		chosen.Store(&shape)
		return relay.Run(ctx)
	}
	ready = func(ctx context.Context) error {
		if chosen.Load() == nil {
			return errChoosingShape
		}
		return pub.Ready(ctx)
	}
	return run, ready, nil
}

// chooseShape is the dispatcher's message shape: RELAY_FOLLOWERS_PER_MESSAGE when the operator set
// it (1..1000), else what the broker's version calls for (amqpadapter.ShapeFor).
func chooseShape(override int, b amqpadapter.Broker) amqpadapter.MessageShape {
	auto := amqpadapter.ShapeFor(b)
	if override == 0 {
		return auto
	}
	return amqpadapter.MessageShape{FollowersPerMessage: override,
		Reason: fmt.Sprintf("set by RELAY_FOLLOWERS_PER_MESSAGE (automatic for this broker: %d)", auto.FollowersPerMessage)}
}

// awaitBroker connects the publisher, retrying with backoff until the broker answers or ctx ends.
// Nothing is claimed meanwhile, so an unreachable broker at start costs no row a publish attempt.
func awaitBroker(ctx context.Context, pub *amqpadapter.Publisher, log *slog.Logger) (amqpadapter.Broker, error) {
	const minWait, maxWait = 100 * time.Millisecond, 2 * time.Second
	wait := minWait
	var lastLog time.Time
	for {
		b, err := pub.Connect(ctx)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, amqpadapter.ErrUnavailable) {
			return amqpadapter.Broker{}, err
		}
		if time.Since(lastLog) > 30*time.Second {
			lastLog = time.Now()
			log.Warn("dispatcher waits for the broker before relaying", slog.Any("err", err))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return amqpadapter.Broker{}, ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, maxWait)
	}
}
