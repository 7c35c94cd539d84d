package main

import (
	"context"
	"errors"
)

func runWS(ctx context.Context, args []string) error {
	return errors.New("ws: not implemented yet")
}
