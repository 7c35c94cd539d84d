package websocket

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/socialnet/social/domain"
)

// ServeHTTP is GET /post/feed/posted: check origin and token, join presence, upgrade, resume if
// asked, then push frames until the client leaves, the token expires, the client falls behind or
// the server shuts down (1001).
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := &handshakeLog{log: h.log, r: r}
	if !originAllowed(r, h.cfg.AllowedOrigins) {
		writeError(w, http.StatusForbidden, "origin not allowed", 0)
		return
	}
	token, viaSubprotocol := tokenFrom(r)
	if token == "" {
		writeError(w, http.StatusUnauthorized, "missing bearer token", 0)
		return
	}
	claims, err := h.cfg.Tokens.Verify(token)
	if err != nil {
		writeError(w, http.StatusUnauthorized, domain.ErrorMessage(err), 0)
		return
	}
	log.user = claims.UserID
	var since int64 = -1
	if s := r.URL.Query().Get("since"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "since must be a non-negative integer position", 0)
			return
		}
		if h.cfg.Missed == nil {
			writeError(w, http.StatusBadRequest, "resume is not available", 0)
			return
		}
		since = n
	}
	kinds, err := parseKinds(r.URL.Query()["types"])
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), 0)
		return
	}
	lines, err := parseBatch(r.URL.Query()["batch"])
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), 0)
		return
	}
	if wait := h.handshakes.take(claims.UserID, time.Now()); wait > 0 {
		h.metrics.throttled.Inc()
		log.Info("refusing a websocket: too many handshakes for this user")
		writeError(w, http.StatusTooManyRequests, fmt.Sprintf("at most %d feed connections a minute per user: retry later", h.cfg.HandshakesPerUser), wait)
		return
	}
	if !h.acquire() {
		writeError(w, http.StatusServiceUnavailable, "server is shutting down", 0)
		return
	}

	// This goroutine owns the socket's writes (writing) until the upgrade and any resume are
	// done: live frames meanwhile wait in the queue.
	c := &conn{h: h, user: claims.UserID, addr: h.cfg.ClientAddress(r), kinds: kinds, lines: lines, writing: true}
	// Join presence before anything is read from PostgreSQL: from here on every frame relayed to
	// this user reaches c's queue, so a resume that reads the database afterwards leaves no gap
	// (design.md §3). The request context may carry the API's request timeout (in `all`): the
	// socket outlives it.
	bindCtx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	err = h.register(bindCtx, c)
	cancel()
	if err != nil {
		h.active.Done()
		status, msg, counter := h.refusal(err)
		if counter != nil {
			counter.Inc()
			log.Info("refusing a websocket: " + msg)
		} else {
			// No upgrade without committed presence: a socket opened now would receive
			// nothing (routing skips it) and look healthy. 503 + Retry-After; the client retries.
			log.Warn("join presence; refusing the websocket", slog.Any("err", err))
		}
		writeError(w, status, msg, 0)
		return
	}
	// One resume at a time per user: a resume waits for the user's turn before the upgrade, and
	// refuses the handshake (429) if it does not come within ResumeWait. Live frames meanwhile
	// queue for c, as during the resume itself.
	var endTurn func()
	if since >= 0 {
		if endTurn, err = h.resumeTurn(r.Context(), c.user); err != nil {
			c.ended()
			h.unregister(c)
			h.active.Done()
			log.Info("refusing a websocket: another resume of this user is still running")
			writeError(w, http.StatusTooManyRequests, "another feed connection of this user is resuming: retry later", 0)
			return
		}
	}
	// Where a later refill starts, read before the 101: a post the client makes once it sees the
	// upgrade is above it. Read after it, on a loaded machine the newest position could already
	// include such a post, and a refill after a broker outage would skip it as one the socket had.
	c.position = since
	if since < 0 {
		c.position = h.floor()
	}
	opts := &websocket.AcceptOptions{
		InsecureSkipVerify: true, // origin checked above, with our allow-list semantics
		CompressionMode:    websocket.CompressionDisabled,
	}
	if viaSubprotocol {
		opts.Subprotocols = []string{subprotocolBearer}
	}
	sb := &smallBuffers{ResponseWriter: w, timeout: h.cfg.WriteTimeout, writes: h.metrics.writes}
	ws, err := websocket.Accept(sb, r, opts)
	if err != nil {
		log.Debug("websocket upgrade failed", slog.Any("err", err))
		if endTurn != nil {
			endTurn()
		}
		c.ended()
		h.unregister(c)
		h.active.Done()
		return
	}
	c.ws, c.wire, c.in = ws, sb.wire, sb.input
	h.metrics.connections.Inc()
	// Push-only: one reader goroutine answers pings and the close handshake; a data message from
	// the client closes the socket with 1008. It is the only goroutine this socket keeps; when it
	// ends (client left, connection broken, or our close completed) the socket is cleaned up.
	go c.readUntilClosed()
	select {
	case <-h.closing:
		c.kick(websocket.StatusGoingAway, "server shutting down")
	default:
	}
	c.startTimers(claims.ExpiresAt)
	log.Debug("websocket connected", slog.Int64("since", since))

	if since >= 0 {
		if err := c.resume(since, false); err != nil && !c.ending() { // not just the client leaving mid-resume
			log.Warn("resume failed", slog.Any("err", err))
			c.kick(websocket.StatusInternalError, "resume failed: reconnect with since")
		}
		endTurn()
	}
	// Hand what queued up meanwhile to the hub's writers, then return: the HTTP handler's
	// goroutine, its stack and net/http's connection state are released; the socket lives on in
	// the hub.
	c.release()
}

// resume sends the frames after since of the socket's kinds (?types=) from PostgreSQL, page by
// page, each page written before the next is read (one page in memory per socket, ResumePageBytes
// at most). Live frames meanwhile
// wait in the queue (bounded: a resume that takes too long under heavy traffic closes with 1013).
//
// A resume is bounded (design.md §4): after ResumeMax frames with more to come, after
// Config.resumePages pages (a page reads a bounded stretch of the outbox, which may hold few of
// the user's frames: without this a resume from far back would walk the whole outbox), or for a since
// above the newest position (the client saw a database since restored from a backup: left as it
// was, every live frame at or below since would be dropped as already resumed, for ever), the
// client gets a resync frame naming the newest position and the socket is closed. Newest is read
// before any frame is sent, so what the client reloads through REST covers every frame up to it.
//
// refill says the position is the server's own (a refill's, from frames this socket was sent), not
// the client's: above the newest position it means the database lost positions it had handed
// out (a crash took the relay's last marks, which commit asynchronously; those rows are relayed
// again at new positions), not a restore, so the refill goes on from the newest instead of
// closing the socket with a resync.
func (c *conn) resume(since int64, refill bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	newest, err := c.h.cfg.Missed.Newest(ctx)
	cancel()
	if err != nil {
		return err
	}
	if since > newest {
		if !refill {
			return c.resync(newest)
		}
		since = newest
	}
	after, sent := since, 0
	types := domain.RelayedEventTypesOf(c.kinds)
	for pages := 1; ; pages++ {
		limit := min(c.h.cfg.ResumePage, c.h.cfg.ResumeMax-sent)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		page, last, more, err := c.h.cfg.Missed.Missed(ctx, c.user, after, limit, c.h.cfg.ResumePageBytes, types)
		cancel()
		if err != nil {
			return err
		}
		frames := make([]*frame, len(page))
		for i, b := range page {
			if frames[i], err = parseFrame(b); err != nil {
				return err
			}
		}
		if err := c.writePage(frames); err != nil { // a page per write(2), not a frame
			return err
		}
		sent += len(page)
		after = max(after, last)
		c.position = max(c.position, after)
		c.mu.Lock()
		c.resumedUpTo = max(c.resumedUpTo, after)
		c.mu.Unlock()
		if !more {
			return nil
		}
		if sent >= c.h.cfg.ResumeMax || pages >= c.h.cfg.resumePages() {
			return c.resync(max(newest, after))
		}
	}
}

// resync sends the resync frame for position and closes the socket normally: live frames queued
// meanwhile are dropped, the client reads them after position when it reconnects.
func (c *conn) resync(position int64) error {
	b, err := json.Marshal(domain.NewResyncFrame(position))
	if err != nil {
		return err
	}
	if err := c.writePage([]*frame{{position: position, body: b}}); err != nil {
		return err
	}
	c.h.metrics.resyncs.Inc()
	c.kick(websocket.StatusNormalClosure, "resync: reload, then reconnect with since")
	return nil
}

// refusal is the answer to a handshake register refused: a bound (429 or 503, with the counter
// it is counted by), or no presence (503, no counter: the database is away).
func (h *Hub) refusal(err error) (status int, msg string, counter prometheus.Counter) {
	switch {
	case errors.Is(err, errTooManySockets):
		return http.StatusTooManyRequests, fmt.Sprintf("at most %d feed sockets per user", h.cfg.MaxSocketsPerUser), h.metrics.refused
	case errors.Is(err, errTooManyFromAddress):
		return http.StatusTooManyRequests, fmt.Sprintf("at most %d feed sockets per client address", h.cfg.MaxSocketsPerAddress),
			h.metrics.capped.WithLabelValues("address")
	case errors.Is(err, errInstanceFull):
		return http.StatusServiceUnavailable, "this feed server is full: retry, or another", h.metrics.capped.WithLabelValues("instance")
	}
	return http.StatusServiceUnavailable, "feed temporarily unavailable", nil
}

// resumeTurn waits for user's turn to resume (one resume at a time per user on this instance), at
// most ResumeWait or until ctx ends; release ends the turn.
func (h *Hub) resumeTurn(ctx context.Context, user string) (release func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.ResumeWait)
	defer cancel()
	h.metrics.waiting.Inc()
	release, err = h.turns.take(ctx, user)
	h.metrics.waiting.Dec()
	if err != nil {
		h.metrics.turnTimeout.Inc()
	}
	return release, err
}
