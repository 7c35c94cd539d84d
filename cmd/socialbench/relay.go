package main

import (
	"context"
	"errors"
)

func runRelay(ctx context.Context, args []string) error {
	return errors.New("relay: not implemented yet")
}
