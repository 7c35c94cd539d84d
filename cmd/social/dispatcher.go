package main

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// runDispatcher relays the outbox to RabbitMQ until ctx ends.
func (a *app) runDispatcher(ctx context.Context) error {
	return errors.New("dispatcher: not implemented yet")
}

// dispatcherComponent builds the relay for `all`: run relays until ctx ends; ready reports broker
// reachability for /readyz. (nil, nil, nil) means no dispatcher yet.
func (a *app) dispatcherComponent(pool *pgxpool.Pool, reg prometheus.Registerer) (run func(context.Context) error, ready func(context.Context) error, err error) {
	return nil, nil, nil
}
