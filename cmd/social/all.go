package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
)

// runAll migrates, then runs the API, the dispatcher and the realtime websocket in one process,
// all HTTP on HTTP_ADDR. For development and `make run`. It listens first, so that a port it
// cannot have fails at once rather than after the migrations.
func (a *app) runAll(ctx context.Context, addrChosen bool) error {
	ln, err := a.listenAll(addrChosen)
	if err != nil {
		return err
	}
	defer ln.Close() // for the returns before serving; serving closes it too
	if err := a.runMigrate(ctx); err != nil {
		return err
	}
	tokens, err := a.tokens(true)
	if err != nil {
		return err
	}
	pool, err := a.openPool(ctx, true)
	if err != nil {
		return err
	}
	defer pool.Close()
	reg := newRegistry()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	relay, relayReady, err := a.dispatcherComponent(pool, reg)
	if err != nil {
		return err
	}
	wsHandler, realtime, realtimeReady, err := a.realtimeComponent(pool, tokens, reg)
	if err != nil {
		return err
	}
	srv, err := a.newAPIServer(pool, tokens, reg, pingDB(pool), relayReady, realtimeReady)
	if err != nil {
		return err
	}
	if wsHandler != nil {
		srv.Handle(http.MethodGet, wsPath, wsHandler)
	}
	return runTogether(ctx, cancel,
		func(ctx context.Context) error { return a.serveOn(ctx, "all", ln, srv) },
		relay, realtime, a.purgeIdempotencyKeys(pool))
}

// runTogether runs every non-nil fn until the first returns; then it cancels the rest and waits.
func runTogether(ctx context.Context, cancel context.CancelFunc, fns ...func(context.Context) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(fns))
	for i, fn := range fns {
		if fn == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel()
			errs[i] = fn(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// allPortTries is how many ports after HTTP_ADDR's default `all` tries when another program
// holds it.
const allPortTries = 100

// listenAll opens HTTP_ADDR for `all`. Set by the user, it is used as given: a port another
// program holds fails, naming the variable. Unset (`make run` on a developer's machine, where
// something else often has 8080), a taken default is no reason to fail: the first free port of the
// next allPortTries serves instead, and the log says which, with the page's URL.
func (a *app) listenAll(addrChosen bool) (net.Listener, error) {
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err == nil {
		return ln, nil
	}
	failed := fmt.Errorf("all: listen on HTTP_ADDR=%s: %w", a.cfg.HTTPAddr, err)
	if addrChosen || !errors.Is(err, syscall.EADDRINUSE) {
		return nil, failed
	}
	host, port, splitErr := net.SplitHostPort(a.cfg.HTTPAddr)
	first, atoiErr := strconv.Atoi(port)
	if splitErr != nil || atoiErr != nil {
		return nil, failed
	}
	for p := first + 1; p <= first+allPortTries && p <= 65535; p++ {
		ln, tryErr := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if tryErr != nil {
			continue
		}
		a.log.Warn("another program holds HTTP_ADDR's default port: serving on the first free one after it (set HTTP_ADDR to choose)",
			slog.String("taken", a.cfg.HTTPAddr), slog.String("url", fmt.Sprintf("http://localhost:%d/", p)))
		return ln, nil
	}
	return nil, fmt.Errorf("all: HTTP_ADDR's default %s and the %d ports after it are taken: set HTTP_ADDR", a.cfg.HTTPAddr, allPortTries)
}
