package main

import (
	"context"
	"errors"
)

// runOutbox runs the operator subcommands: status, replay, retry-dead.
func (a *app) runOutbox(ctx context.Context, args []string) error {
	return errors.New("outbox: not implemented yet")
}
