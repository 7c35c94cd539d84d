package main

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// runHealthcheck GETs url and fails unless it answers 200. The container image has no curl, so
// compose's health checks call `social healthcheck http://127.0.0.1:PORT/readyz`.
func runHealthcheck(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
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
