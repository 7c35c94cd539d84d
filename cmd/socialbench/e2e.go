package main

import (
	"context"
	"errors"
)

func runE2E(ctx context.Context, args []string) error {
	return errors.New("e2e: not implemented yet")
}
