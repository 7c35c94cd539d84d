package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/socialnet/social/adapters/httperr"
)

// opsMux serves /healthz (the process is alive), /readyz (every check passes; 503 with
// Retry-After otherwise) and /metrics for the processes that have no REST API: dispatcher and
// realtime. The API server has its own copies of these routes (adapters/http).
func (a *app) opsMux(reg *prometheus.Registry, checks ...func(context.Context) error) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		var errs []error
		for _, check := range checks {
			if check != nil {
				errs = append(errs, check(r.Context()))
			}
		}
		if err := errors.Join(errs...); err != nil {
			// The reason names hosts, users and databases: the log has it, the client does not.
			a.log.Warn("not ready", slog.Any("err", err))
			w.Header().Set("Retry-After", httperr.RetryAfter(httperr.DefaultRetryAfter))
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
