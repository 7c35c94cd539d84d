package outbox

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/outbox/broker"
)

// A big fan-out must not hold up the rest of the outbox. The emitter therefore publishes every
// row's first page of followers at once, on the main publisher, and leaves the pages after it to a
// FIFO of continuations that it works through on the bulk publisher (its own connection and
// channels) whenever no new batch waits. A small author's post claimed while a 100,000-follower
// post is being relayed goes out after one page read, not after 100.
//
// The order a follower sees must stay the position order (design.md §3): a later row's follower
// who is named in a big row's remaining pages must not get the later row first. So a row's
// recipients who are followers of an active big row beyond its first page, or who are named by a
// deferred part still in flight on the bulk publisher, are deferred: appended to the FIFO behind
// that big row and published on the same bulk channels (a channel keeps its order into each
// queue). Everyone else gets the row at once. A big row stays active until the broker confirmed
// its last bulk message (confirmed means routed into the queues, so nothing published later can
// overtake it).
//
// What is deferred and what is not is decided against friendships as they are when the row is
// emitted: a user who starts following a big author in the middle of its fan-out may be named by
// its later pages yet get a later row of another author first. They followed after the post was
// created; we accept that.

// bulkReadSize is how many followers one continuation step reads: a few messages per query, so a
// 1,000,000-follower post costs 200 queries, not 1,000.
const bulkReadSize = 5000

// bulkWindow is how many continuation groups may wait for their confirms: enough to keep the
// broker busy while the next page is read; few enough that a deferred part waits behind a short
// backlog, and that a 1,000,000-follower post is never held in memory.
const bulkWindow = 4

// bigRow is a row whose followers did not fit its first page, while its remaining pages are being
// published on the bulk publisher.
type bigRow struct {
	author string
	after  string // the first page's last follower: the bulk pages name the followers above it
	// Under bulkInFlight.mu: bulk groups of the row not yet confirmed, and whether no more will
	// be sent (last page sent, or abandoned). The row holds later rows back until both say so.
	inFlight int
	closed   bool
}

// continuation is one FIFO entry: the remaining pages of a big row, or a deferred part of a row.
type continuation struct {
	b   *batch
	row int // index in b.rows
	// big rows: page the author's followers after cursor.
	big    *bigRow
	cursor string
	// next is the page after cursor, being read while the previous one is published (the
	// database's round trip overlaps the broker's work). Buffered: a read abandoned with its
	// continuation ends without a reader.
	next chan pageRead
	// deferred parts: these recipients, in one group.
	msgs []recipients
	ids  []string
	// afterMain is how many main groups had been sent when c reached the head of the queue
	// (armed); started is set once c sent its first group (see bulkInFlight.mayStep).
	afterMain int64
	armed     bool
	started   bool
}

type pageRead struct {
	p   page
	err error
}

// prefetch starts reading the page after c.cursor.
func (e *emitter) prefetch(ctx context.Context, c *continuation) {
	r, author, after := e.r, c.big.author, c.cursor
	c.next = make(chan pageRead, 1)
	go func(out chan<- pageRead) {
		p, err := readPage(ctx, r.cfg.Pool, author, after, bulkReadSize, r.bulkSplit)
		out <- pageRead{p, err}
	}(c.next)
}

// bulkInFlight is what the bulk publisher carries that later rows must not overtake, shared by the
// emitter (adds) and the confirmer (removes when confirmed).
type bulkInFlight struct {
	mu     sync.Mutex
	bigs   map[*bigRow]struct{}
	ids    map[string]int // recipients of deferred parts in flight
	groups int            // bulk groups not yet confirmed
	freed  chan struct{}  // a group was confirmed (capacity 1)
	// mainConfirmed counts the main groups the confirmer has waited for, in send order.
	mainConfirmed int64
}

func newBulkInFlight() *bulkInFlight {
	return &bulkInFlight{bigs: map[*bigRow]struct{}{}, ids: map[string]int{}, freed: make(chan struct{}, 1)}
}

// bulkGroup is what the confirmer releases when a bulk group is confirmed (or failed: then the
// row is not relayed and is published again later, after everything here).
type bulkGroup struct {
	big  *bigRow  // set on every group of a big row
	last bool     // the big row's last group (possibly with no message)
	ids  []string // the recipients of a deferred part
}

func (f *bulkInFlight) release(g *bulkGroup) {
	f.mu.Lock()
	f.groups--
	if g.big != nil {
		g.big.inFlight--
		if g.last {
			g.big.closed = true
		}
		f.dropIfDone(g.big)
	}
	f.dropIDs(g.ids)
	f.mu.Unlock()
	f.wake()
}

// dropIDs forgets one deferred part's recipients. Called with f.mu held.
func (f *bulkInFlight) dropIDs(ids []string) {
	for _, id := range ids {
		if f.ids[id]--; f.ids[id] <= 0 {
			delete(f.ids, id)
		}
	}
}

// wake tells a waiting emitter that something was confirmed.
func (f *bulkInFlight) wake() {
	select {
	case f.freed <- struct{}{}:
	default:
	}
}

// dropIfDone stops a big row holding later rows back once it sends nothing more and the broker
// confirmed (or failed) all it sent. Called with f.mu held.
func (f *bulkInFlight) dropIfDone(g *bigRow) {
	if g.closed && g.inFlight <= 0 {
		delete(f.bigs, g)
	}
}

// mainDone records that the confirmer has waited for one more main group.
func (f *bulkInFlight) mainDone() {
	f.mu.Lock()
	f.mainConfirmed++
	f.mu.Unlock()
	f.wake()
}

// mayStep says whether c's next group may go: the window has room, and, before its first group,
// every main group sent before c reached the head of the queue is confirmed. The bulk connection
// is another TCP connection with its own broker channels: without that wait, a big row's next
// page (or a deferred part) could reach a follower before an earlier row still queued on the
// main one.
func (f *bulkInFlight) mayStep(c *continuation) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.groups < bulkWindow && (c.started || f.mainConfirmed >= c.afterMain)
}

// emitter is the goroutine between the claim and the confirmer.
type emitter struct {
	r     *Relay
	pl    *pipeline
	out   chan<- sent
	fl    *bulkInFlight
	queue []*continuation
	// mainSent counts the groups sent on the main publisher.
	mainSent int64
}

// emitLoop emits the batches of in, in order, and works through the continuations between them.
// New batches go first: they are what a big fan-out must not hold up. It returns (closing out)
// when in is closed and every continuation is done or abandoned.
func (r *Relay) emitLoop(ctx context.Context, pl *pipeline, fl *bulkInFlight, in <-chan *batch, out chan<- sent) {
	defer close(out)
	e := &emitter{r: r, pl: pl, out: out, fl: fl}
	take := func(b *batch, ok bool) {
		if !ok {
			in = nil // a nil channel blocks: only freed wakes the wait below
			return
		}
		e.emitBatch(ctx, b)
	}
	for in != nil || len(e.queue) > 0 {
		select {
		case b, ok := <-in:
			take(b, ok)
			continue
		default:
		}
		if len(e.queue) > 0 {
			c := e.queue[0]
			if !c.armed {
				// Every main group sent so far: at least those of the rows before c, some of which
				// were still in the batch's unsent group when c was queued.
				c.afterMain, c.armed = e.mainSent, true
			}
			if e.fl.mayStep(c) {
				e.step(ctx)
				continue
			}
		}
		select {
		case b, ok := <-in:
			take(b, ok)
		case <-e.fl.freed:
		}
	}
}

// emitBatch publishes up to Config.InlineFollowers followers of every row of b on the main publisher
// (deferring the recipients that must wait behind a big row) and queues the rest. A batch stops
// taking rows once MaxBatchMessages messages were emitted; rows not taken are released by finish
// and claimed again after the mark. A batch with big rows is marked when their continuations are
// done.
func (e *emitter) emitBatch(ctx context.Context, b *batch) {
	r := e.r
	e.out <- sent{b: b, start: true}
	defer e.endMain(b)

	var err error
	// Sends survive cancellation of ctx: a group already sent is waited for (bounded by the
	// publisher's progress watchdog) so its rows can be marked instead of sent again. ctx is
	// checked before each group instead.
	pubCtx := context.WithoutCancel(ctx)
	var msgs []broker.Message
	var owners []int32
	flush := func() bool {
		if len(msgs) == 0 {
			return true
		}
		if err := e.stopping(ctx); err != nil {
			b.stopErr = err
			for _, o := range owners {
				b.states[o].unsent = true
			}
			msgs, owners = nil, nil
			return false
		}
		e.mainSent++
		e.out <- sent{b: b, wait: r.send(pubCtx, r.cfg.Publisher, msgs), owners: owners, main: true}
		msgs, owners = make([]broker.Message, 0, r.cfg.PublishGroup), make([]int32, 0, r.cfg.PublishGroup)
		return true
	}
	held := e.heldBack(ctx, b, b.firsts)
	// The bound counts follower deliveries, whatever the message shape: with one message per
	// follower (RabbitMQ 3.10) a message bound cut nearly every batch, and each cut row released
	// its author's later rows already delivered (per-author order), which went out again.
	budget := r.cfg.MaxBatchMessages * readPageSize
	// Only the batch's first row to followers opens with the short lead message (leadFollowers):
	// every later row waits behind it anyway, so a lead would not bring its first sockets
	// forward, and it costs the broker a message more per post (socialbench broker: 1.11 × the
	// CPU of one message, paired median). Later rows of an author share one page cut without it.
	led := false
	var unled unledPages
	for i, rw := range b.rows {
		if budget <= 0 || ctx.Err() != nil {
			break
		}
		if e.pl.isBlocked(rw.author, b) {
			continue // released by finish; not worth sending
		}
		st := &b.states[i]
		if rw.refuse != "" {
			// Nothing of it is sent; the emitter owns the row's state until a group names it.
			st.refused, st.complete, st.at = rw.refuse, true, time.Now()
			continue
		}
		if rw.superseded {
			// Nothing of it is true now: complete with no message, hence relayed.
			st.complete, st.at = true, time.Now()
			continue
		}
		// Rows go to the followers of their author (the claim read their first pages) or to the
		// recipients their event names (domain.Route, decoded by the claim): the relay knows no
		// event type.
		p, ok := b.firsts[rw.author]
		lead := 0
		switch {
		case rw.recipients != nil:
			// Explicit recipients: one page, never a big fan-out (domain.MaxRecipients).
			p, ok = newPage(rw.recipients, 0, r.split, 0), true
		case ok && !led:
			lead, led = leadFollowers, true // the claim cut its first page with the short lead
		case ok:
			p = unled.of(rw.author, p, r.split)
		}
		first, inline := true, 0
		for ok {
			now, later := p, []string(nil)
			if held != nil {
				if !first {
					lead = 0
				}
				if now, later, err = held(p, first, lead); err != nil {
					b.stopErr = err
					break
				}
			}
			for _, m := range now.msgs {
				msgs = append(msgs, broker.Message{MessageID: rw.eventID, RoutingKey: m.key, CC: m.cc, Body: rw.frame, Lane: m.lane})
				owners = append(owners, int32(i))
				st.emitted++
				budget -= 1 + len(m.cc)
				if len(msgs) >= r.cfg.PublishGroup && !flush() {
					return
				}
			}
			if len(later) > 0 {
				// On the bulk lanes, behind what it must not overtake.
				e.enqueue(&continuation{b: b, row: i, ids: later, msgs: newPage(later, 0, r.bulkSplit, 0).msgs})
			}
			if !p.full {
				break
			}
			if inline += len(p.ids); inline < r.cfg.InlineFollowers {
				// Send what we have before waiting for the database.
				if !flush() {
					return
				}
				if p, err = readPage(ctx, r.cfg.Pool, rw.author, p.last, min(readPageSize, r.cfg.InlineFollowers-inline), r.split); err != nil {
					b.stopErr = err
					break
				}
				first, ok = false, len(p.ids) > 0
				continue
			}
			big := &bigRow{author: rw.author, after: p.last}
			e.fl.mu.Lock()
			e.fl.bigs[big] = struct{}{}
			e.fl.mu.Unlock()
			e.enqueue(&continuation{b: b, row: i, big: big, cursor: p.last})
			held = e.heldBack(ctx, b, b.firsts) // later rows are checked against it too
			break
		}
		if err != nil {
			break
		}
		if ok && p.full {
			continue // complete when its continuation is
		}
		st.complete = true
		if st.emitted == 0 {
			st.at = time.Now() // no followers (or all deferred): nothing to wait for yet
		}
	}
	flush()
}

// heldBack returns, when something is in flight on the bulk publisher, a function that splits a
// first page into the recipients who may have the row now and those who must wait behind it (nil
// when nothing is in flight). Big rows are checked in one query per batch for all the batch's
// first-page recipients: an index lookup of friendships' primary key per recipient.
func (e *emitter) heldBack(ctx context.Context, b *batch, firsts map[string]page) func(p page, first bool, lead int) (page, []string, error) {
	e.fl.mu.Lock()
	bigs := make([]*bigRow, 0, len(e.fl.bigs))
	for g := range e.fl.bigs {
		bigs = append(bigs, g)
	}
	pending := len(e.fl.ids) > 0
	e.fl.mu.Unlock()
	if len(bigs) == 0 && !pending {
		return nil
	}
	var named map[string]bool // first-page recipients named by an active big row's later pages
	var namedErr error
	if len(bigs) > 0 {
		var ids []string
		for _, p := range firsts {
			ids = append(ids, p.ids...)
		}
		for _, rw := range b.rows {
			ids = append(ids, rw.recipients...)
		}
		named, namedErr = namedByBigRows(ctx, e.r.cfg.Pool, bigs, ids)
	}
	return func(p page, first bool, lead int) (page, []string, error) {
		if namedErr != nil {
			return page{}, nil, namedErr
		}
		named := named
		if !first && len(bigs) > 0 {
			// A later inline page of a row: not among the batch's first pages.
			var err error
			if named, err = namedByBigRows(ctx, e.r.cfg.Pool, bigs, p.ids); err != nil {
				return page{}, nil, err
			}
		}
		var now, later []string
		e.fl.mu.Lock()
		for _, id := range p.ids {
			if named[id] || e.fl.ids[id] > 0 {
				later = append(later, id)
			} else {
				now = append(now, id)
			}
		}
		e.fl.mu.Unlock()
		if len(later) == 0 {
			return p, nil, nil
		}
		np := newPage(now, 0, e.r.split, lead)
		np.full, np.last = p.full, p.last
		return np, later, nil
	}
}

// namedByBigRows returns which of ids the remaining pages of bigs name.
func namedByBigRows(ctx context.Context, pool *pgxpool.Pool, bigs []*bigRow, ids []string) (map[string]bool, error) {
	authors, afters := make([]string, len(bigs)), make([]string, len(bigs))
	for i, g := range bigs {
		authors[i], afters[i] = g.author, g.after
	}
	rows, err := pool.Query(ctx, `
		SELECT DISTINCT f.user_id::text
		FROM unnest($1::uuid[], $2::uuid[]) AS g(author, after)
		JOIN friendships f ON f.friend_id = g.author AND f.user_id > g.after
		WHERE f.user_id = ANY($3::uuid[])`, authors, afters, ids)
	if err != nil {
		return nil, fmt.Errorf("read followers of big fan-outs in flight: %w", err)
	}
	defer rows.Close()
	named := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("read followers of big fan-outs in flight: %w", err)
		}
		named[id] = true
	}
	return named, rows.Err()
}

func (e *emitter) enqueue(c *continuation) {
	if c.ids != nil {
		e.fl.mu.Lock()
		for _, id := range c.ids {
			e.fl.ids[id]++
		}
		e.fl.mu.Unlock()
	}
	c.b.pending++
	e.queue = append(e.queue, c)
}

// stopping says why no more groups may be sent: ctx ended, or the broker lost a message.
func (e *emitter) stopping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if e.pl.down() {
		return errBrokerDown
	}
	return nil
}

// step sends the next group of the first continuation on the bulk publisher. When sending must
// stop, every queued continuation is abandoned: its rows are released (and published again later,
// after everything already sent).
func (e *emitter) step(ctx context.Context) {
	r := e.r
	c := e.queue[0]
	if err := e.stopping(ctx); err != nil {
		e.abandon(err)
		return
	}
	st := &c.b.states[c.row]
	g := &bulkGroup{}
	var recips []recipients
	last := true
	if c.big != nil {
		if c.next == nil {
			e.prefetch(ctx, c)
		}
		rd := <-c.next
		if rd.err != nil {
			e.abandon(rd.err)
			return
		}
		recips, c.cursor = rd.p.msgs, rd.p.last
		g.big = c.big
		if last = !rd.p.full; last {
			g.last = true
		} else {
			e.prefetch(ctx, c)
		}
	} else {
		recips, g.ids = c.msgs, c.ids
	}
	rw := c.b.rows[c.row]
	if len(recips) > 0 {
		msgs := make([]broker.Message, len(recips))
		owners := make([]int32, len(recips))
		for i, m := range recips {
			msgs[i] = broker.Message{MessageID: rw.eventID, RoutingKey: m.key, CC: m.cc, Body: rw.frame, Lane: m.lane}
			owners[i] = int32(c.row)
		}
		st.emitted += len(msgs)
		e.countGroup(g)
		c.started = true
		e.out <- sent{b: c.b, wait: r.send(context.WithoutCancel(ctx), r.bulk, msgs), owners: owners, bulk: g}
	} else if g.last {
		// An empty last page (the followers ended on a page boundary): the row's earlier groups
		// may still be unconfirmed, so it is released in order behind them, not here.
		e.countGroup(g)
		e.out <- sent{b: c.b, wait: waitDone{}, bulk: g}
	}
	if !last {
		return
	}
	if c.big != nil {
		st.complete = true
	}
	e.queue = e.queue[1:]
	e.done(c.b)
}

func (e *emitter) countGroup(g *bulkGroup) {
	e.fl.mu.Lock()
	e.fl.groups++
	if g.big != nil {
		g.big.inFlight++
	}
	e.fl.mu.Unlock()
}

// abandon drops every queued continuation: their rows are not relayed this time. A big row keeps
// holding later rows back until the groups it already sent are confirmed or failed.
func (e *emitter) abandon(err error) {
	for _, c := range e.queue {
		c.b.states[c.row].unsent = true
		if c.b.stopErr == nil {
			c.b.stopErr = err
		}
		e.fl.mu.Lock()
		if c.big != nil {
			c.big.closed = true
			e.fl.dropIfDone(c.big)
		}
		e.fl.dropIDs(c.ids)
		e.fl.mu.Unlock()
		e.done(c.b)
	}
	e.queue = nil
}

func (e *emitter) endMain(b *batch) {
	b.mainDone = true
	if b.pending == 0 {
		e.end(b)
	}
}

func (e *emitter) done(b *batch) {
	if b.pending--; b.pending == 0 && b.mainDone {
		e.end(b)
	}
}

// end sends b's end marker: every group of b is ahead of it in out.
func (e *emitter) end(b *batch) {
	e.out <- sent{b: b, end: true}
}
