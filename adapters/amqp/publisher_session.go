package amqp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// session is one connection with its confirm-mode channel.
type session struct {
	conn   *amqp091.Connection
	cork   *corkConn // the socket under conn: start writes each call's messages at once
	ch     *amqp091.Channel
	addr   string
	broker Broker

	progress  atomic.Int64 // unix nanos of the last write accepted or confirm received
	stalled   atomic.Bool  // aborted for lack of progress
	aborting  atomic.Bool
	abortOnce sync.Once
	aborted   chan struct{} // closed once an abort closed the connection
}

func (s *session) progressed() { s.progress.Store(time.Now().UnixNano()) }

// closed reports whether the connection or its channel closed (a channel exception closes only
// the channel; the session is then replaced as a whole).
func (s *session) closed() bool { return s.conn.IsClosed() || s.ch.IsClosed() }

// abort closes the connection (failing every write and pending confirm on it) once.
func (s *session) abort(stalled bool) {
	s.abortOnce.Do(func() {
		if stalled {
			s.stalled.Store(true)
		}
		s.aborting.Store(true)
		defer close(s.aborted)
		_ = s.conn.CloseDeadline(time.Now().Add(time.Second))
	})
}

// session returns the live session, connecting if needed. Within the backoff after a failed
// attempt it fails at once: the caller keeps its messages and retries later.
func (p *Publisher) session(ctx context.Context) (*session, error) {
	if p.sess != nil && p.sess.closed() {
		p.drop("connection lost")
	}
	if p.sess == nil {
		if wait := time.Until(p.nextDial); wait > 0 {
			return nil, fmt.Errorf("%w: reconnecting in %s", ErrUnavailable, wait.Round(time.Millisecond))
		}
		s, err := p.connect(ctx)
		if err != nil {
			p.failures++
			backoff := p.cfg.ReconnectBackoffMin << min(p.failures-1, 16)
			p.nextDial = time.Now().Add(min(backoff, p.cfg.ReconnectBackoffMax))
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
		p.connected(s)
	}
	return p.sess, nil
}

func (p *Publisher) connect(ctx context.Context) (*session, error) {
	conn, cork, addr, err := p.cfg.Dialer.dialCorked(ctx)
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) (*session, error) {
		_ = conn.CloseDeadline(time.Now().Add(time.Second))
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return fail("open channel", err)
	}
	if err := ch.Confirm(false); err != nil {
		return fail("confirm mode", err)
	}
	if err := ch.ExchangeDeclare(p.cfg.Exchange, exchangeKind, true, false, false, false, nil); err != nil {
		return fail("declare exchange "+p.cfg.Exchange, err)
	}
	s := &session{conn: conn, cork: cork, ch: ch, addr: addr, broker: BrokerOf(conn, addr), aborted: make(chan struct{})}
	s.progressed()
	return s, nil
}

// drop closes the current session (if any); the next Publish reconnects.
func (p *Publisher) drop(why string) {
	if p.sess == nil {
		return
	}
	p.log.Warn("amqp publisher disconnected", slog.String("broker", p.sess.addr), slog.String("reason", why))
	_ = p.sess.conn.CloseDeadline(time.Now().Add(time.Second))
	p.sess = nil
	p.up.Store(false)
}

// Ready reports whether the publisher has a live connection, connecting if it is idle and
// disconnected (for /readyz). It never waits behind a running Publish.
func (p *Publisher) Ready(ctx context.Context) error {
	if p.closed.Load() {
		return ErrClosed
	}
	if !p.mu.TryLock() {
		if p.up.Load() {
			return nil
		}
		return fmt.Errorf("%w: reconnecting", ErrUnavailable)
	}
	defer p.mu.Unlock()
	if p.sess != nil && !p.sess.closed() {
		return nil
	}
	p.sess = nil
	p.up.Store(false)
	if wait := time.Until(p.nextDial); wait > 0 {
		return fmt.Errorf("%w: reconnecting in %s", ErrUnavailable, wait.Round(time.Millisecond))
	}
	s, err := p.connect(ctx)
	if err != nil {
		p.failures++
		p.nextDial = time.Now().Add(min(p.cfg.ReconnectBackoffMin<<min(p.failures-1, 16), p.cfg.ReconnectBackoffMax))
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	p.connected(s)
	return nil
}

// connected makes s the live session and logs which broker it reached (a reconnect may reach
// another node of a cluster, possibly of another version).
func (p *Publisher) connected(s *session) {
	p.failures = 0
	p.sess = s
	p.up.Store(true)
	p.log.Info("amqp publisher connected", slog.String("broker", s.addr),
		slog.String("broker_product", s.broker.Product), slog.String("broker_version", s.broker.Version))
}

// Connect returns the broker of the live connection, connecting first if there is none; within
// the backoff after a failed attempt it fails at once with ErrUnavailable. It waits behind a
// running Publish. The dispatcher calls it before it relays, to log the broker's version and to
// claim nothing while no broker answers.
func (p *Publisher) Connect(ctx context.Context) (Broker, error) {
	if p.closed.Load() {
		return Broker{}, ErrClosed
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sess != nil && p.sess.closed() {
		p.drop("connection lost")
	}
	if p.sess != nil {
		return p.sess.broker, nil
	}
	if wait := time.Until(p.nextDial); wait > 0 {
		return Broker{}, fmt.Errorf("%w: reconnecting in %s", ErrUnavailable, wait.Round(time.Millisecond))
	}
	s, err := p.connect(ctx)
	if err != nil {
		p.failures++
		p.nextDial = time.Now().Add(min(p.cfg.ReconnectBackoffMin<<min(p.failures-1, 16), p.cfg.ReconnectBackoffMax))
		return Broker{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	p.connected(s)
	return s.broker, nil
}

// Close waits for running calls (each bounded by its progress watchdog) and closes the connection.
func (p *Publisher) Close() error {
	if p.closed.Swap(true) {
		return nil
	}
	p.calls.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sess != nil {
		err := p.sess.conn.CloseDeadline(time.Now().Add(5 * time.Second))
		p.sess = nil
		p.up.Store(false)
		if err != nil && !errors.Is(err, amqp091.ErrClosed) {
			return fmt.Errorf("close amqp publisher: %w", err)
		}
	}
	return nil
}
