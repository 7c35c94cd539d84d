package outbox_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/socialnet/social/outbox"
	"github.com/socialnet/social/outbox/broker"
)

// The relay against a fake of its publishing port: what it does with the port's answers, with no
// broker in the way. The same behaviour against RabbitMQ is tested in the rest of this package.

// The relay keeps several groups in flight (it sends the next before the confirms of the earlier
// arrive), puts every message naming a user on that user's lane, and hands each user the frames
// in position order on that lane.
func TestRelayPipelinesOnTheFakePortAndKeepsEachUserOnOneLane(t *testing.T) {
	t.Parallel()
	e := newFakeEnv(t)
	us := e.users(64)
	authors, followers := us[:4], us[4:]
	for i, a := range authors {
		e.follow(a, followers[i*10:i*10+30]) // overlapping audiences
	}
	pub := newFakeBroker(4)
	pub.hold()
	for i := range 40 {
		e.post(authors[i%len(authors)], fmt.Sprint("post ", i))
	}
	e.relay(outbox.Config{Publisher: pub, PageSize: 7, BatchSize: 8, PublishGroup: 3})
	// Held confirms: a relay that waited for each group before sending the next would never
	// have more than one in flight.
	waitFor(t, 10*time.Second, "three groups in flight at once", func() bool { _, in, _ := pub.stats(); return in >= 3 })
	pub.release()
	waitFor(t, 10*time.Second, "every row relayed", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == 40 })

	lane := map[string]int{}
	last := map[string]int64{}
	lanesUsed := map[int]bool{}
	got := map[string]int{}
	for _, m := range pub.messages() {
		lanesUsed[m.Lane] = true
		if len(m.CC) > 6 {
			t.Fatalf("a message names %d users, want at most PageSize 7", 1+len(m.CC))
		}
		for _, u := range m.recipients() {
			if l, ok := lane[u]; ok && l != m.Lane {
				t.Fatalf("user %s on lanes %d and %d", u, l, m.Lane)
			}
			lane[u] = m.Lane
			if m.frame.Position <= last[u] {
				t.Fatalf("user %s: position %d after %d on its lane", u, m.frame.Position, last[u])
			}
			last[u] = m.frame.Position
			got[u]++
		}
	}
	if len(lanesUsed) < 2 {
		t.Errorf("lanes used %v: want the users spread over the 4 lanes", lanesUsed)
	}
	want := map[string]int{}
	for i := range 40 {
		for _, f := range followers[(i%4)*10 : (i%4)*10+30] {
			want[f]++
		}
	}
	for u, n := range want {
		if got[u] != n {
			t.Errorf("user %s named in %d messages, want %d", u, got[u], n)
		}
	}
}

// A big fan-out's first pages go on the main port, its later pages on the bulk one; a later
// post of another author reaches the followers named by those later pages behind them, on the
// bulk port (whose lanes keep the order), and everyone else at once on the main port.
func TestRelayPutsBigFanOutPagesOnTheBulkPort(t *testing.T) {
	t.Parallel()
	e := newFakeEnv(t)
	us := e.users(2502)
	big, small, fans := us[0], us[1], us[2:]
	e.follow(big, fans)                                 // 2,500: one inline page, then the bulk pages
	e.follow(small, append(fans[:5:5], fans[2495:]...)) // 5 on the first page, 5 on the last
	mainPub, bulk := newFakeBroker(2), newFakeBroker(3)
	bulk.hold()
	e.post(big, "big")
	e.relay(outbox.Config{Publisher: mainPub, BulkPublisher: bulk, InlineFollowers: 1000})
	waitFor(t, 10*time.Second, "bulk pages sent", func() bool { c, _, _ := bulk.stats(); return c > 0 })
	e.post(small, "small")
	// The small post's followers on the big row's first page get it on the main port at once.
	waitFor(t, 10*time.Second, "the small post on the main port", func() bool {
		for _, m := range mainPub.messages() {
			if m.frame.PostText == "small" {
				return true
			}
		}
		return false
	})
	bulk.release()
	waitFor(t, 10*time.Second, "both rows relayed", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == 2 })

	named := map[string]int{}
	for _, m := range mainPub.messages() {
		for _, u := range m.recipients() {
			if m.frame.PostText == "small" && !contains(fans[:5], u) {
				t.Errorf("small post to %s on the main port: that follower is named by the big row's bulk pages", u)
			}
			named[m.frame.PostText+" "+u]++
		}
	}
	bigOnBulk := map[string]bool{}
	for _, m := range bulk.messages() {
		for _, u := range m.recipients() {
			if m.frame.PostText == "big" {
				bigOnBulk[u] = true
			} else if !bigOnBulk[u] {
				t.Errorf("small post reached %s on the bulk port before the big row's page naming it", u)
			}
			named[m.frame.PostText+" "+u]++
		}
	}
	for i, f := range fans {
		if named["big "+f] != 1 {
			t.Fatalf("follower %d named %d times for the big post, want once", i, named["big "+f])
		}
		if i >= 1000 && !bigOnBulk[f] {
			t.Fatalf("follower %d of the big post not on the bulk port", i)
		}
	}
	for _, f := range append(fans[:5:5], fans[2495:]...) {
		if named["small "+f] != 1 {
			t.Errorf("follower %s named %d times for the small post, want once", f, named["small "+f])
		}
	}
}

// A refused message is an attempt of its row: retried after a backoff, dead after MaxAttempts,
// its author's later rows wait behind it and other authors' rows do not. An unavailable broker
// counts no attempt: the rows go out again once it answers.
func TestRelayRefusedRowsRetryThenDieAndUnavailableCountsNoAttempt(t *testing.T) {
	t.Parallel()
	e := newFakeEnv(t)
	us := e.users(4)
	a, b, fa, fb := us[0], us[1], us[2], us[3]
	e.follow(a, []string{fa})
	e.follow(b, []string{fb})
	pub := newFakeBroker(1)
	refusedText := "refuse me"
	pub.setDecide(func(m fakeMsg) error {
		if m.frame.PostText == refusedText {
			return fmt.Errorf("%w: test", broker.ErrRefused)
		}
		return nil
	})
	e.post(a, refusedText)
	e.post(a, "a's next")
	e.post(b, "b's")
	e.relay(outbox.Config{Publisher: pub, MaxAttempts: 3, RetryBackoffMin: 50 * time.Millisecond, RetryBackoffMax: 50 * time.Millisecond})
	waitFor(t, 10*time.Second, "the refused row dead", func() bool { return e.db.Count(t, "outbox", "status = 'dead'") == 1 })
	waitFor(t, 10*time.Second, "the other rows relayed", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == 2 })
	var attempts int
	var lastErr string
	if err := e.db.Pool.QueryRow(t.Context(), `SELECT attempts, last_error FROM outbox WHERE status = 'dead'`).Scan(&attempts, &lastErr); err != nil {
		t.Fatal(err)
	}
	if attempts != 3 || !strings.Contains(lastErr, "refused") {
		t.Errorf("dead row: attempts %d, last_error %q; want 3 and the refusal", attempts, lastErr)
	}
	sends := map[string][]int{} // text → indexes in send order
	for i, m := range pub.messages() {
		sends[m.frame.PostText] = append(sends[m.frame.PostText], i)
	}
	if n := len(sends[refusedText]); n != 3 {
		t.Errorf("refused row sent %d times, want MaxAttempts 3", n)
	}
	lastRefused := sends[refusedText][len(sends[refusedText])-1]
	if next := sends["a's next"]; next[len(next)-1] < lastRefused {
		t.Errorf("a's next row was last sent (%d) before a's refused row's last attempt (%d): per-author order", next[len(next)-1], lastRefused)
	}
	if bs := sends["b's"]; len(bs) != 1 || bs[0] > sends[refusedText][1] {
		t.Errorf("b's row sent at %v, want once, before a's refused row's retries (%v)", bs, sends[refusedText])
	}

	// Unavailable: every message fails for a while, then the broker answers.
	pub.setDecide(func(fakeMsg) error { return fmt.Errorf("%w: test", broker.ErrUnavailable) })
	e.post(a, "while down")
	waitFor(t, 10*time.Second, "a few unavailable attempts", func() bool {
		n := 0
		for _, m := range pub.messages() {
			if m.frame.PostText == "while down" {
				n++
			}
		}
		return n >= 2
	})
	pub.setDecide(nil)
	waitFor(t, 10*time.Second, "the row relayed once the broker answers", func() bool {
		return e.db.Count(t, "outbox", "status = 'relayed'") == 3
	})
	if n := e.db.Count(t, "outbox", "status = 'relayed'", "attempts > 0"); n != 0 {
		t.Errorf("%d relayed rows count attempts: unavailability is not the row's fault", n)
	}
}

// A row whose event the domain does not relay is refused like a nack (never sent, then dead),
// without stopping the relay for anyone else.
func TestRelayRefusesEventTypesTheDomainDoesNotRelay(t *testing.T) {
	t.Parallel()
	e := newFakeEnv(t)
	us := e.users(3)
	a, b, f := us[0], us[1], us[2]
	e.follow(a, []string{f})
	e.follow(b, []string{f})
	e.db.Exec(t, `WITH ev AS (
			INSERT INTO events (id, aggregate_id, aggregate_version, type, payload)
			VALUES (gen_random_uuid(), gen_random_uuid(), 1, 'test.not_relayed', '{}') RETURNING id)
		INSERT INTO outbox (event_id, author_user_id) SELECT id, $1 FROM ev`, a)
	e.post(b, "b's")
	pub := newFakeBroker(1)
	e.relay(outbox.Config{Publisher: pub, MaxAttempts: 2, RetryBackoffMin: 20 * time.Millisecond, RetryBackoffMax: 20 * time.Millisecond})
	waitFor(t, 10*time.Second, "the unknown row dead and b's relayed", func() bool {
		return e.db.Count(t, "outbox", "status = 'dead'", "last_error LIKE '%not relayed%'") == 1 &&
			e.db.Count(t, "outbox", "status = 'relayed'") == 1
	})
	for _, m := range pub.messages() {
		if m.frame.PostText != "b's" {
			t.Errorf("sent %s", m.Body)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Only the first row of a batch opens with the short lead message: the rows after it wait
// behind it anyway, so each is one message to all its followers (one message less per post for
// the broker to take in).
func TestRelayLeadsOnlyTheBatchsFirstRow(t *testing.T) {
	t.Parallel()
	e := newFakeEnv(t)
	us := e.users(151)
	author, followers := us[0], us[1:]
	e.follow(author, followers)
	for i := range 5 {
		e.post(author, fmt.Sprint("post ", i)) // all committed before the relay's first claim
	}
	pub := newFakeBroker(1)
	e.relay(outbox.Config{Publisher: pub, BatchSize: 8})
	waitFor(t, 10*time.Second, "every row relayed", func() bool { return e.db.Count(t, "outbox", "status = 'relayed'") == 5 })

	sizes := map[int64][]int{} // position → recipients per message, in send order
	var positions []int64
	for _, m := range pub.messages() {
		p := m.frame.Position
		if _, ok := sizes[p]; !ok {
			positions = append(positions, p)
		}
		sizes[p] = append(sizes[p], len(m.recipients()))
	}
	if len(positions) != 5 {
		t.Fatalf("messages for %d posts, want 5: %v", len(positions), sizes)
	}
	for i, p := range positions {
		want := []int{150}
		if i == 0 {
			want = []int{100, 50}
		}
		if fmt.Sprint(sizes[p]) != fmt.Sprint(want) {
			t.Errorf("post %d (position %d): messages naming %v followers, want %v", i, p, sizes[p], want)
		}
	}
}
