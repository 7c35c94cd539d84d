package main

import (
	"context"
	"errors"
	"log/slog"

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
	mux := opsMux(reg, pingDB(pool), ready)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return runTogether(ctx, cancel,
		func(ctx context.Context) error { return a.serve(ctx, "dispatcher", a.cfg.DispatcherAddr, mux) },
		run)
}

// dispatcherComponent builds the relay (also used by `all`): run relays until ctx ends, then
// closes the publisher; ready reports whether the broker is reachable, for /readyz. The backlog
// gauges of outbox status are registered too.
func (a *app) dispatcherComponent(pool *pgxpool.Pool, reg prometheus.Registerer) (run func(context.Context) error, ready func(context.Context) error, err error) {
	urls, err := amqpadapter.ParseURLs(a.cfg.AMQPURL)
	if err != nil {
		return nil, nil, err
	}
	log := a.log.With(slog.String("component", "dispatcher"))
	pub, err := amqpadapter.NewPublisher(amqpadapter.PublisherConfig{Dialer: amqpadapter.NewDialer(urls),
		Lanes: a.cfg.RelayPublishLanes, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	// Big fan-outs' later pages go on a connection of their own, so that their backlog in the
	// broker and in the TCP stream never delays other authors' posts (outbox/emit.go).
	bulk, err := amqpadapter.NewPublisher(amqpadapter.PublisherConfig{Dialer: amqpadapter.NewDialer(urls),
		Lanes: a.cfg.RelayPublishLanes, Logger: log.With(slog.String("publisher", "bulk"))})
	if err != nil {
		return nil, nil, err
	}
	relay, err := outbox.NewRelay(outbox.Config{
		Pool:          pool,
		Publisher:     pub,
		BulkPublisher: bulk,
		Exchange:      a.cfg.AMQPExchange,
		PageSize:      a.cfg.RelayFollowersPerMessage,
		Logger:        log,
		Registerer:    reg,
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
	run = func(ctx context.Context) error {
		defer func() {
			for _, p := range []*amqpadapter.Publisher{pub, bulk} {
				if err := p.Close(); err != nil {
					log.Warn("close publisher", slog.Any("err", err))
				}
			}
		}()
		log.Info("dispatcher started", slog.String("exchange", a.cfg.AMQPExchange))
		return relay.Run(ctx)
	}
	return run, pub.Ready, nil
}
