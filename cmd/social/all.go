package main

import (
	"context"
	"errors"
	"net/http"
	"sync"
)

// runAll migrates, then runs the API, the dispatcher and the realtime websocket in one process,
// all HTTP on HTTP_ADDR. For development and `make run`.
func (a *app) runAll(ctx context.Context) error {
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
		func(ctx context.Context) error { return a.serve(ctx, "all", a.cfg.HTTPAddr, srv) },
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
