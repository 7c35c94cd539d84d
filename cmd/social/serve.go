package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
)

// serve runs an HTTP server on addr until ctx ends, then shuts it down gracefully. Every server of
// the binary has the same bounds (docs/limits.md): the headers must arrive within
// HTTP_READ_HEADER_TIMEOUT and the whole request within HTTP_READ_TIMEOUT, the response must be
// taken by the client within HTTP_WRITE_TIMEOUT, and an idle keep-alive connection is closed after
// HTTP_IDLE_TIMEOUT. So no slow client holds a connection, a goroutine or a response's memory for
// longer than that. A websocket outlives them: net/http clears the deadlines of a connection it
// hands over (Hijack), and the websocket adapter bounds its sockets itself.
func (a *app) serve(ctx context.Context, name, addr string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", name, addr, err)
	}
	return a.serveOn(ctx, name, ln, h)
}

// serveOn is serve on a listener already open; it closes it.
func (a *app) serveOn(ctx context.Context, name string, ln net.Listener, h http.Handler) error {
	if a.onListen != nil {
		a.onListen(name, ln.Addr())
	}
	srv := &http.Server{Handler: h,
		ReadHeaderTimeout: a.cfg.HTTPReadHeaderTimeout,
		ReadTimeout:       a.cfg.HTTPReadTimeout,
		WriteTimeout:      a.cfg.HTTPWriteTimeout,
		IdleTimeout:       a.cfg.HTTPIdleTimeout,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	a.log.Info("listening", slog.String("server", name), slog.String("addr", ln.Addr().String()))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	a.log.Info("shutting down", slog.String("server", name))
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("%s: shutdown: %w", name, err)
	}
	return nil
}
