package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/cmd/socialbench/internal/bench"
)

// The smoke tests run each subcommand once, tiny, against the real services, to prove it works;
// nothing about speed is asserted. They are `make test-bench`, not `make test`.

// socialBin is ./cmd/social, built once for every smoke test.
var socialBin string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(func() int {
		if !testing.Short() {
			dir, err := os.MkdirTemp("", "socialbench-test-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			if socialBin, err = bench.Build(ctx, dir); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		return m.Run()
	}())
}

// smokeSystem skips under -short, runs t in parallel and gives it a deadline and the system's
// configuration on the test services.
func smokeSystem(t *testing.T) (context.Context, bench.SystemConfig) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts the real system")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx, bench.SystemConfig{Services: bench.Services{AMQPURL: amqptest.URL(), AdminURL: bench.DefaultAdminURL}, Bin: socialBin}
}
