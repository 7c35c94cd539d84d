package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// runHealthcheck fails unless url answers: an HTTP URL with 200 (the container image has no curl,
// so compose's health checks call `social healthcheck http://127.0.0.1:PORT/readyz`), a
// PostgreSQL URL with a login and a query (scripts/services asks it whether user postgres logs in,
// on a machine without psql).
func runHealthcheck(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if strings.HasPrefix(url, "postgres://") || strings.HasPrefix(url, "postgresql://") {
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return fmt.Errorf("%s: %w", redactURL(url), err)
		}
		defer conn.Close(context.WithoutCancel(ctx))
		return conn.Ping(ctx)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, res.Status)
	}
	return nil
}
