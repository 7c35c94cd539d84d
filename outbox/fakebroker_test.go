package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
	"github.com/socialnet/social/outbox/broker"
)

// fakeBroker is the relay's publishing port (outbox/broker) without a broker: it records every
// message in send order, answers each with decide (confirmed when nil or when decide returns nil)
// and, while held, keeps every Wait waiting, so a test sees how many calls the relay keeps in
// flight. The relay's tests against RabbitMQ (the rest of this package) cover the real adapter.
type fakeBroker struct {
	lanes int

	mu       sync.Mutex
	sent     []fakeMsg
	calls    int
	inFlight int // calls sent and not waited for
	maxIn    int
	decide   func(m fakeMsg) error // under mu
	held     chan struct{}         // non-nil: Wait blocks until it is closed
}

// fakeMsg is one sent message with its call and decoded frame.
type fakeMsg struct {
	broker.Message
	call  int
	frame domain.FeedFrame
}

// recipients are the routing key and CC.
func (m fakeMsg) recipients() []string {
	out := []string{m.RoutingKey}
	for _, c := range m.CC {
		out = append(out, c.(string))
	}
	return out
}

func newFakeBroker(lanes int) *fakeBroker { return &fakeBroker{lanes: lanes} }

func (f *fakeBroker) Lanes() int { return f.lanes }

func (f *fakeBroker) Send(ctx context.Context, exchange string, msgs []broker.Message) broker.Confirms {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	f.inFlight++
	f.maxIn = max(f.maxIn, f.inFlight)
	c := &fakeConfirms{f: f, ctx: ctx, held: f.held}
	for i, m := range msgs {
		fm := fakeMsg{Message: m, call: f.calls}
		if err := json.Unmarshal(m.Body, &fm.frame); err != nil {
			panic(fmt.Sprintf("frame %q: %v", m.Body, err))
		}
		f.sent = append(f.sent, fm)
		if f.decide != nil {
			if err := f.decide(fm); err != nil {
				if c.failed == nil {
					c.failed = map[int]error{}
				}
				c.failed[i] = err
			}
		}
	}
	return c
}

// hold makes later Waits block until release.
func (f *fakeBroker) hold() {
	f.mu.Lock()
	f.held = make(chan struct{})
	f.mu.Unlock()
}

func (f *fakeBroker) release() {
	f.mu.Lock()
	if f.held != nil {
		close(f.held)
		f.held = nil
	}
	f.mu.Unlock()
}

func (f *fakeBroker) setDecide(d func(fakeMsg) error) {
	f.mu.Lock()
	f.decide = d
	f.mu.Unlock()
}

func (f *fakeBroker) messages() []fakeMsg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeMsg(nil), f.sent...)
}

func (f *fakeBroker) stats() (calls, inFlight, maxIn int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, f.inFlight, f.maxIn
}

type fakeConfirms struct {
	f      *fakeBroker
	ctx    context.Context
	held   chan struct{}
	failed map[int]error
	once   sync.Once
	err    error
}

func (c *fakeConfirms) Wait() error {
	c.once.Do(func() {
		if c.held != nil {
			select {
			case <-c.held:
			case <-c.ctx.Done():
				c.err = fmt.Errorf("%w: %w", broker.ErrUnavailable, c.ctx.Err())
			}
		}
		c.f.mu.Lock()
		c.f.inFlight--
		c.f.mu.Unlock()
		if c.err == nil && len(c.failed) > 0 {
			c.err = &broker.SendError{Failed: c.failed}
		}
	})
	return c.err
}

var _ broker.Publisher = (*fakeBroker)(nil)

// fakeEnv is a database for relays on fake brokers: no RabbitMQ.
type fakeEnv struct {
	t     testing.TB
	db    *pgtest.DB
	posts *postgres.PostService
}

func newFakeEnv(t testing.TB) *fakeEnv {
	db := pgtest.New(t)
	return &fakeEnv{t: t, db: db, posts: postgres.NewPostService(db.Pool)}
}

func (e *fakeEnv) env() *env { return &env{t: e.t, db: e.db, posts: e.posts} }

func (e *fakeEnv) users(n int) []string                 { return e.env().users(n) }
func (e *fakeEnv) follow(author string, fs []string)    { e.env().follow(author, fs) }
func (e *fakeEnv) post(author, text string) domain.Post { return e.env().post(author, text) }

// relay runs a relay on pub (and bulk, when set) until the test ends.
func (e *fakeEnv) relay(cfg outbox.Config) {
	e.t.Helper()
	cfg.Pool = e.db.Pool
	cfg.Exchange = "fake." + uuid.NewString()
	en := e.env()
	en.exchange = cfg.Exchange
	en.relay(cfg)
	// Before the relay stops (cleanups run last first): a held Wait would never return.
	for _, p := range []broker.Publisher{cfg.Publisher, cfg.BulkPublisher} {
		if f, ok := p.(*fakeBroker); ok {
			e.t.Cleanup(f.release)
		}
	}
}
