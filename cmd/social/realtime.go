package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"syscall"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	amqpadapter "github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/auth"
	httpapi "github.com/socialnet/social/adapters/http"
	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/domain"
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

// realtimeComponent builds the realtime worker (also used by `all`): handler serves wsPath; run
// registers the instance's presence and consumes its queue until ctx ends, then closes every
// socket with 1001; ready reports whether the instance is registered and its queue is live.
func (a *app) realtimeComponent(pool *pgxpool.Pool, tokens *auth.Tokens, reg prometheus.Registerer) (handler http.Handler, run func(context.Context) error, ready func(context.Context) error, err error) {
	urls, err := amqpadapter.ParseURLs(a.cfg.AMQPURL)
	if err != nil {
		return nil, nil, nil, err
	}
	id := a.cfg.RealtimeInstanceID
	if id == "" {
		id = "rt-" + uuid.NewString()
	}
	log := a.log.With(slog.String("component", "realtime"), slog.String("instance_id", id))
	var hub *websocket.Hub
	// A lapsed registration and a broker reconnect both mean frames skipped this instance for a
	// while: every open socket fills its gap from the outbox.
	presence, err := postgres.NewPresence(postgres.PresenceConfig{Pool: pool, InstanceID: id, Lease: a.cfg.RealtimeLease,
		BeforeRegister: func() { hub.Hold() }, OnLost: func() { hub.Refill() }, Logger: log})
	if err != nil {
		return nil, nil, nil, err
	}
	sub, err := amqpadapter.NewSubscriber(amqpadapter.SubscriberConfig{Dialer: amqpadapter.NewDialer(urls),
		Exchange: a.cfg.AMQPExchange, OnConnect: func() { hub.Reconnected() }, Logger: log})
	if err != nil {
		return nil, nil, nil, err
	}
	proxies, _ := a.cfg.trustedProxies() // validated by parseConfig
	hub, err = websocket.NewHub(websocket.Config{
		Tokens:               tokens,
		Presence:             presence,
		Missed:               outbox.NewResume(pool),
		AllowedOrigins:       a.cfg.WSAllowedOrigins,
		SendQueueBytes:       a.cfg.WSSendQueueBytes,
		DialogQueueBytes:     a.cfg.WSDialogQueueBytes,
		ResumeMax:            a.cfg.WSResumeMaxFrames,
		MaxSocketsPerUser:    a.cfg.WSMaxSocketsPerUser,
		HandshakesPerUser:    a.cfg.WSHandshakesPerUser,
		ResumeWait:           min(a.cfg.WSResumeWait, a.cfg.HTTPReadTimeout/2), // net/http cancels a request not upgraded within the read timeout
		MaxSockets:           a.maxSockets(log),
		MaxSocketsPerAddress: a.cfg.WSMaxSocketsPerAddress,
		ClientAddress:        httpapi.ClientAddressKey(proxies),
		Logger:               log,
		Registerer:           reg,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	run = func(ctx context.Context) error {
		registered := make(chan error, 1)
		go func() { registered <- presence.Run(ctx) }()
		msgs, err := sub.Subscribe(ctx, id)
		if err != nil {
			return err
		}
		consumed := make(chan struct{})
		go func() {
			defer close(consumed)
			for msg := range msgs {
				if err := domain.EachDelivery(msg.Payload, hub.Deliver); err != nil {
					log.Warn("dropping the rest of a malformed feed message", slog.String("message_id", msg.UUID), slog.Any("err", err))
				}
				msg.Ack()
			}
		}()
		<-ctx.Done()
		shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
		defer cancel()
		err = hub.Shutdown(shutCtx)
		if err != nil {
			err = fmt.Errorf("realtime: close sockets: %w", err)
		}
		<-consumed
		return errors.Join(err, sub.Close(), <-registered)
	}
	ready = func(ctx context.Context) error {
		return errors.Join(presence.Ready(ctx), sub.Ready(ctx))
	}
	return hub, run, ready, nil
}

// maxSockets is WS_MAX_SOCKETS, or, when 0, the open-file limit less 1,024: the soft limit is first
// raised to the hard one (a socket is a descriptor; the default soft limit of 1,024 would refuse
// the thousand-and-first user), and a realtime at its bound still answers health and metrics and
// reaches the database. A red team reached the limit from one address: accept4 failed, /readyz
// and /metrics timed out.
func (a *app) maxSockets(log *slog.Logger) int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		raised := lim
		raised.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		}
	}
	if a.cfg.WSMaxSockets > 0 {
		if uint64(a.cfg.WSMaxSockets)+1024 > lim.Cur {
			log.Warn("WS_MAX_SOCKETS is close to or above the open-file limit", slog.Int("ws_max_sockets", a.cfg.WSMaxSockets), slog.Uint64("open_file_limit", lim.Cur))
		}
		return a.cfg.WSMaxSockets
	}
	return max(64, int(min(lim.Cur, 1<<30))-1024)
}
