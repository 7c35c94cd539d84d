package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	amqpadapter "github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/auth"
	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/outbox"
)

// wsPath is the websocket endpoint of design.md §4.
const wsPath = "/post/feed/posted"

// runRealtime serves the websocket on WS_ADDR until ctx ends, with /healthz, /readyz and /metrics.
// On shutdown every socket is closed with 1001 so its client reconnects to another instance.
func (a *app) runRealtime(ctx context.Context) error {
	tokens, err := a.tokens(false)
	if err != nil {
		return err
	}
	pool, err := a.openPool(ctx, true)
	if err != nil {
		return err
	}
	defer pool.Close()
	reg := newRegistry()
	handler, run, ready, err := a.realtimeComponent(pool, tokens, reg)
	if err != nil {
		return err
	}
	mux := a.opsMux(reg, pingDB(pool), ready)
	mux.Handle("GET "+wsPath, handler)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return runTogether(ctx, cancel,
		func(ctx context.Context) error { return a.serve(ctx, "realtime", a.cfg.WSAddr, mux) },
		run)
}

// realtimeComponent builds the realtime worker (also used by `all`): handler serves wsPath, run
// consumes the instance's queue until ctx ends and then closes every socket with 1001, ready
// reports whether the queue and its bindings are live on a broker connection.
func (a *app) realtimeComponent(pool *pgxpool.Pool, tokens *auth.Tokens, reg prometheus.Registerer) (handler http.Handler, run func(context.Context) error, ready func(context.Context) error, err error) {
	urls, err := amqpadapter.ParseURLs(a.cfg.AMQPURL)
	if err != nil {
		return nil, nil, nil, err
	}
	log := a.log.With(slog.String("component", "realtime"))
	id := a.cfg.RealtimeInstanceID
	if id == "" {
		id = "rt-" + uuid.NewString()
	}
	log = log.With(slog.String("instance_id", id))
	presence, err := postgres.NewPresence(postgres.PresenceConfig{Pool: pool, InstanceID: id, Lease: a.cfg.RealtimeLease, Logger: log})
	if err != nil {
		return nil, nil, nil, err
	}
	var hub *websocket.Hub
	consumer, err := amqpadapter.NewConsumer(amqpadapter.ConsumerConfig{
		Dialer:      amqpadapter.NewDialer(urls),
		Exchange:    a.cfg.AMQPExchange,
		Handle:      func(d amqpadapter.Delivery) { hub.Deliver(d.Recipients, d.Body) },
		OnReconnect: func() { hub.Reconnected() },
		Logger:      log,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	hub, err = websocket.NewHub(websocket.Config{
		Tokens:            tokens,
		Binder:            presenceAndBinding{presence, consumer},
		Missed:            outbox.NewResume(pool),
		AllowedOrigins:    a.cfg.WSAllowedOrigins,
		SendQueueBytes:    a.cfg.WSSendQueueBytes,
		ResumeMax:         a.cfg.WSResumeMaxFrames,
		MaxSocketsPerUser: a.cfg.WSMaxSocketsPerUser,
		Logger:            log,
		Registerer:        reg,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	run = func(ctx context.Context) error {
		consumed := make(chan error, 1)
		go func() { consumed <- consumer.Run(ctx) }()
		registered := make(chan error, 1)
		go func() { registered <- presence.Run(ctx) }()
		<-ctx.Done()
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
		defer cancel()
		err := hub.Shutdown(shutCtx)
		if err != nil {
			err = fmt.Errorf("realtime: close sockets: %w", err)
		}
		return errors.Join(err, <-consumed, <-registered)
	}
	ready = func(ctx context.Context) error {
		return errors.Join(consumer.Ready(ctx), presence.Ready(ctx))
	}
	return hub, run, ready, nil
}

// presenceAndBinding records a user's presence in PostgreSQL beside the broker binding that
// still routes their frames.
type presenceAndBinding struct {
	presence *postgres.Presence
	binding  *amqpadapter.Consumer
}

func (b presenceAndBinding) Bind(ctx context.Context, userID string) error {
	if err := b.binding.Bind(ctx, userID); err != nil {
		return err
	}
	if err := b.presence.Join(ctx, userID); err != nil {
		_ = b.binding.Unbind(ctx, userID)
		return err
	}
	return nil
}

func (b presenceAndBinding) Unbind(ctx context.Context, userID string) error {
	b.presence.Leave(userID)
	return b.binding.Unbind(ctx, userID)
}
