package main

import (
	"context"
	"errors"
	"log/slog"
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

// dispatcherComponent builds the relay (also used by `all`): run waits for the broker, then relays
// until ctx ends and closes the publisher; ready reports whether the relay runs and the broker is
// reachable, for /readyz. The backlog gauges of outbox status are registered too.
func (a *app) dispatcherComponent(pool *pgxpool.Pool, reg prometheus.Registerer) (run func(context.Context) error, ready func(context.Context) error, err error) {
	urls, err := amqpadapter.ParseURLs(a.cfg.AMQPURL)
	if err != nil {
		return nil, nil, err
	}
	log := a.log.With(slog.String("component", "dispatcher"))
	pub, err := amqpadapter.NewPublisher(amqpadapter.PublisherConfig{Dialer: amqpadapter.NewDialer(urls),
		Exchange: a.cfg.AMQPExchange, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	relay, err := outbox.NewRelay(outbox.Config{
		Pool:       pool,
		Publisher:  pub,
		Refused:    amqpadapter.IsRefused,
		Logger:     log,
		Registerer: reg,
	})
	if err != nil {
		return nil, nil, err
	}
	if err := reg.Register(outbox.NewStatusCollector(pool, 0, log)); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, nil, err
		}
	}
	var started atomic.Bool
	run = func(ctx context.Context) error {
		defer func() {
			if err := pub.Close(); err != nil {
				log.Warn("close publisher", slog.Any("err", err))
			}
		}()
		b, err := awaitBroker(ctx, pub, log)
		if err != nil {
			if ctx.Err() != nil {
				return nil // shut down before the broker answered: nothing was claimed
			}
			return err
		}
		log.Info("dispatcher started", slog.String("exchange", a.cfg.AMQPExchange),
			slog.String("broker", b.Addr), slog.String("broker_version", b.String()))
		started.Store(true)
		return relay.Run(ctx)
	}
	ready = func(ctx context.Context) error {
		if !started.Load() {
			return errWaitingForBroker
		}
		return pub.Ready(ctx)
	}
	return run, ready, nil
}

// errWaitingForBroker is /readyz's answer while the dispatcher waits for its first broker connection.
var errWaitingForBroker = errors.New("dispatcher: waiting for the broker")

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
