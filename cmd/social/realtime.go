package main

import (
	"context"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/socialnet/social/adapters/auth"
)

// wsPath is the websocket endpoint of design.md §4.
const wsPath = "/post/feed/posted"

// runRealtime serves the websocket on WS_ADDR until ctx ends.
func (a *app) runRealtime(ctx context.Context) error {
	return errors.New("realtime: not implemented yet")
}

// realtimeComponent builds the realtime worker for `all`: handler serves wsPath, run consumes
// until ctx ends, ready reports broker reachability. A nil handler means no realtime yet.
func (a *app) realtimeComponent(pool *pgxpool.Pool, tokens *auth.Tokens, reg prometheus.Registerer) (handler http.Handler, run func(context.Context) error, ready func(context.Context) error, err error) {
	return nil, nil, nil, nil
}
