package websocket

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"

	"github.com/socialnet/social/domain"
)

// ServeHTTP is GET /post/feed/posted: check origin and token, bind, upgrade, resume if asked,
// then push frames until the client leaves, the token expires, the client falls behind, the broker
// connection is re-established (1012) or the server shuts down (1001).
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := h.log.With(slog.String("uri", redactedURI(r.URL)), slog.String("remote", r.RemoteAddr))
	if !originAllowed(r, h.cfg.AllowedOrigins) {
		writeError(w, http.StatusForbidden, "origin not allowed")
		return
	}
	token, viaSubprotocol := tokenFrom(r)
	if token == "" {
		writeError(w, http.StatusUnauthorized, "missing bearer token")
		return
	}
	claims, err := h.cfg.Tokens.Verify(token)
	if err != nil {
		writeError(w, http.StatusUnauthorized, domain.ErrorMessage(err))
		return
	}
	var since int64 = -1
	if s := r.URL.Query().Get("since"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "since must be a non-negative integer position")
			return
		}
		if h.cfg.Missed == nil {
			writeError(w, http.StatusBadRequest, "resume is not available")
			return
		}
		since = n
	}
	if !h.acquire() {
		writeError(w, http.StatusServiceUnavailable, "server is shutting down")
		return
	}
	defer h.active.Done()
	log = log.With(slog.String("user_id", claims.UserID))

	// The request context may carry the API's request timeout (in `all`): the socket outlives it.
	base := context.WithoutCancel(r.Context())
	c := newConn(claims.UserID, h.cfg.SendQueue, h.metrics.slow.Inc)
	// Bind before anything is read from PostgreSQL: from here on every frame for this user
	// reaches c.send, so a resume that reads the database afterwards leaves no gap.
	bindCtx, cancel := context.WithTimeout(base, 10*time.Second)
	err = h.register(bindCtx, c)
	cancel()
	if err != nil {
		log.Error("bind user", slog.Any("err", err))
		writeError(w, http.StatusServiceUnavailable, "feed temporarily unavailable")
		return
	}
	defer h.unregister(c)

	opts := &websocket.AcceptOptions{
		InsecureSkipVerify: true, // origin checked above, with our allow-list semantics
		CompressionMode:    websocket.CompressionDisabled,
	}
	if viaSubprotocol {
		opts.Subprotocols = []string{subprotocolBearer}
	}
	ws, err := websocket.Accept(w, r, opts)
	if err != nil {
		log.Debug("websocket upgrade failed", slog.Any("err", err))
		return
	}
	defer ws.CloseNow()
	h.metrics.connections.Inc()
	defer h.metrics.connections.Dec()
	// Push-only: CloseRead answers pings and the close handshake; a data message from the client
	// closes the socket with 1008.
	readCtx := ws.CloseRead(base)
	log.Debug("websocket connected", slog.Int64("since", since))

	s := &session{h: h, c: c, ws: ws, base: base, log: log}
	if since >= 0 {
		if err := s.resume(since); err != nil {
			if readCtx.Err() == nil { // not just the client leaving mid-resume
				log.Warn("resume failed", slog.Any("err", err))
				s.close(websocket.StatusInternalError, "resume failed: reconnect with since")
			}
			return
		}
	}
	s.push(readCtx, claims.ExpiresAt)
}

// session is one accepted socket's writer.
type session struct {
	h    *Hub
	c    *conn
	ws   *websocket.Conn
	base context.Context
	log  *slog.Logger
	// resumedUpTo is the highest position sent by resume: live frames at or below it were
	// already sent from PostgreSQL and are dropped (no duplicate across the switch).
	resumedUpTo int64
}

// resume sends every frame after since from PostgreSQL, page by page. Live frames meanwhile
// wait in c.send (bounded: a resume that takes too long under heavy traffic closes with 1013).
func (s *session) resume(since int64) error {
	after := since
	for {
		ctx, cancel := context.WithTimeout(s.base, 10*time.Second)
		page, err := s.h.cfg.Missed.Missed(ctx, s.c.user, after, s.h.cfg.ResumePage)
		cancel()
		if err != nil {
			return err
		}
		for _, b := range page {
			f, err := parseFrame(b)
			if err != nil {
				return err
			}
			if err := s.write(f); err != nil {
				return err
			}
			after = f.position
		}
		s.resumedUpTo = after
		if len(page) < s.h.cfg.ResumePage {
			return nil
		}
	}
}

func (s *session) write(f *frame) error {
	ctx, cancel := context.WithTimeout(s.base, s.h.cfg.WriteTimeout)
	defer cancel()
	if err := s.ws.Write(ctx, websocket.MessageText, f.body); err != nil {
		return err
	}
	s.h.metrics.framesSent.Inc()
	if f.live && !f.createdAt.IsZero() {
		s.h.metrics.latency.Observe(time.Since(f.createdAt).Seconds())
	}
	return nil
}

// push writes live frames and keeps the socket alive until one of the ends below.
func (s *session) push(readCtx context.Context, expires time.Time) {
	ping := time.NewTicker(s.h.cfg.PingInterval)
	defer ping.Stop()
	expiry := time.NewTimer(time.Until(expires))
	defer expiry.Stop()
	for {
		select {
		case f := <-s.c.send:
			if f.position <= s.resumedUpTo {
				continue
			}
			if err := s.write(f); err != nil {
				s.log.Debug("write frame", slog.Any("err", err))
				return
			}
		case <-ping.C:
			ctx, cancel := context.WithTimeout(s.base, s.h.cfg.PingTimeout)
			err := s.ws.Ping(ctx)
			cancel()
			if err != nil {
				s.log.Debug("ping", slog.Any("err", err))
				return
			}
		case <-expiry.C:
			s.close(StatusTokenExpired, "token expired")
			return
		case <-s.c.kicked:
			if s.c.kickCode == websocket.StatusTryAgainLater {
				s.log.Info("closing slow websocket client")
			}
			s.close(s.c.kickCode, s.c.kickReason)
			return
		case <-s.h.closing:
			s.close(websocket.StatusGoingAway, "server shutting down")
			return
		case <-readCtx.Done():
			return // the client closed or the connection broke
		}
	}
}

func (s *session) close(code websocket.StatusCode, reason string) {
	if err := s.ws.Close(code, reason); err != nil && !errors.Is(err, context.Canceled) {
		s.log.Debug("close websocket", slog.Any("err", err))
	}
}
