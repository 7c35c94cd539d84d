package outbox_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/outbox"
)

// cutProxy forwards connections to target and can cut every open one at once (the broker
// connection dies mid-stream; new connections are accepted again right away). hold stops
// forwarding from the broker (confirms) on the open connections until the next cut, so batches
// pile up in flight; connections opened later are not held (their handshake must pass).
type cutProxy struct {
	mu    sync.Mutex
	cond  *sync.Cond
	conns []*proxied
	cuts  int
}

type proxied struct {
	client, broker net.Conn
	held           bool
}

func newCutProxy(t *testing.T, target string) (*cutProxy, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{}
	p.cond = sync.NewCond(&p.mu)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			pc := &proxied{client: c, broker: up}
			p.mu.Lock()
			p.conns = append(p.conns, pc)
			p.mu.Unlock()
			wg.Go(func() { _, _ = io.Copy(up, c); _ = up.Close() })
			wg.Go(func() { _, _ = io.Copy(c, heldReader{p, pc}); _ = c.Close() })
		}
	})
	return p, ln.Addr().String()
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.conns {
		_ = pc.client.Close()
		_ = pc.broker.Close()
		pc.held = false
	}
	p.conns = nil
	p.cuts++
	p.cond.Broadcast()
}

func (p *cutProxy) hold() {
	p.mu.Lock()
	for _, pc := range p.conns {
		pc.held = true
	}
	p.mu.Unlock()
}

// heldReader keeps what it reads from the broker while its connection is held. It checks after
// reading, so a read already waiting when hold is called is held too.
type heldReader struct {
	p  *cutProxy
	pc *proxied
}

func (h heldReader) Read(b []byte) (int, error) {
	n, err := h.pc.broker.Read(b)
	h.p.mu.Lock()
	for h.pc.held {
		h.p.cond.Wait()
	}
	h.p.mu.Unlock()
	return n, err
}

// The riskiest edge of the pipelined relay: batch N+1 is claimed and published while batch N's
// confirms are outstanding. When the broker connection dies under batch N, its unconfirmed rows
// are released; rows of the same authors in N+1 may meanwhile be confirmed on a new connection.
// Those must be released too (and published again after the released rows), never marked relayed
// ahead of them: per author, relayed positions grow with event order, the last delivery of every
// post arrives in event order, and nothing is lost.
func TestRelayConnectionLostUnderEarlierBatchKeepsOrderPerAuthor(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	us := e.users(5)
	authors, followers := us[:3], us[3:]
	for _, a := range authors {
		e.follow(a, followers)
	}
	c := e.consumer(followers...)

	const perAuthor = 300
	for i := range perAuthor {
		for _, a := range authors {
			e.post(a, fmt.Sprint(i))
		}
	}
	total := perAuthor * len(authors)

	live, _ := url.Parse(amqptest.URL())
	proxy, addr := newCutProxy(t, live.Host)
	via := *live
	via.Host = addr
	// Small batches and groups: several batches in flight when the connection is cut.
	e.relay(outbox.Config{Publisher: e.publisher(via.String()), BatchSize: 30, PublishGroup: 5})
	// Cleanups run last first: cut before the relay is stopped, so that a failing test does not
	// wait on confirms the proxy holds.
	t.Cleanup(proxy.cut)

	// Each round: hold the confirms so several batches are written and unconfirmed, then cut
	// the connection under them; the relay reconnects at once (the proxy accepts again).
	start := time.Now()
	for round := range 3 {
		before := len(c.deliveries())
		waitFor(t, 30*time.Second, fmt.Sprintf("round %d: relay publishing", round), func() bool {
			return len(c.deliveries()) > before || before >= total
		})
		proxy.hold()
		before = len(c.deliveries())
		// Messages in flight: ten more written after the hold, or the pipeline full of claimed,
		// unconfirmed batches (each has its outbox_inflight row until its mark): a relay that
		// had written all it may before the hold writes nothing more until a confirm comes.
		waitFor(t, 30*time.Second, fmt.Sprintf("round %d: messages in flight", round), func() bool {
			return len(c.deliveries()) >= min(before+10, total) || e.db.Count(t, "outbox_inflight") >= 3
		})
		proxy.cut()
	}
	t.Logf("3 cuts in %s", time.Since(start).Round(time.Millisecond))
	waitFor(t, 60*time.Second, "every row relayed", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == total })

	// Per author, positions of the relayed rows grow with id (event order).
	var outOfOrder int
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM (
		SELECT position < lag(position) OVER (PARTITION BY author_user_id ORDER BY id) AS bad FROM outbox) x
		WHERE bad`).Scan(&outOfOrder); err != nil {
		t.Fatal(err)
	}
	if outOfOrder != 0 {
		t.Errorf("%d relayed rows have a lower position than an earlier row of their author", outOfOrder)
	}

	// Every post delivered; the last delivery of each post arrives in event order per author.
	waitFor(t, 10*time.Second, "deliveries of every post", func() bool {
		seen := map[string]bool{}
		for _, d := range c.deliveries() {
			seen[d.msgID] = true
		}
		return len(seen) == total
	})
	ds := c.deliveries()
	last := map[string]int{} // event id → index of its last delivery
	post := map[string]delivery{}
	for i, d := range ds {
		last[d.msgID] = i
		post[d.msgID] = d
	}
	byAuthor := map[string][]string{}
	for id := range last {
		a := post[id].frame.AuthorUserID
		byAuthor[a] = append(byAuthor[a], id)
	}
	for a, ids := range byAuthor {
		sort.Slice(ids, func(i, j int) bool { return last[ids[i]] < last[ids[j]] })
		for i, id := range ids {
			if got := post[id].frame.PostText; got != fmt.Sprint(i) {
				t.Fatalf("author %s: last deliveries out of event order: post %q at rank %d", a, got, i)
			}
		}
	}
	t.Logf("%d deliveries for %d posts (%d republished) after %d connection cuts", len(ds), total, len(ds)-total, proxy.cuts)
}
