package main

import (
	"context"
	"errors"
)

// These subcommands are filled in by the dispatcher, realtime and operator work.

func (a *app) runDispatcher(ctx context.Context) error { return errors.New("dispatcher: not implemented yet") }
func (a *app) runRealtime(ctx context.Context) error   { return errors.New("realtime: not implemented yet") }
func (a *app) runOutbox(ctx context.Context, args []string) error {
	return errors.New("outbox: not implemented yet")
}

// runAll migrates, then serves the API (and, as they land, dispatcher and realtime) on HTTP_ADDR.
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
	srv, err := a.newAPIServer(pool, tokens, newRegistry(), pingDB(pool))
	if err != nil {
		return err
	}
	return a.serve(ctx, "all", a.cfg.HTTPAddr, srv)
}
