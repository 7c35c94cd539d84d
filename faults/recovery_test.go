//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/socialnet/social/internal/wait"

	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/faults/testinfra"
)

// backlogPosts is how many posts pile up in the outbox while the dispatcher is down.
const backlogPosts = 1000

// TestBacklogFlushAfterDispatcherOutageReachesAReadingClient is issue #11's backlog scenario:
// posts pile up while no dispatcher runs; a dispatcher comes back, is SIGKILLed after the first
// frame reached the client (mid-flush, rows claimed and not marked) and another one takes over.
// The follower reads all along, at its own pace. Either it keeps its socket and gets every post in
// position order, or, if cut, it resumes with ?since=<last position> and ends with every post
// (dedupe by id) — nothing missing. Failure mode guarded: the recovering dispatcher flushes the
// backlog faster than one socket drains, and a per-socket bound counted in frames (256) closed a
// client that was reading normally ("closing slow websocket client"); the frames queued for it
// were dropped and, when the resume was refused or raced a second flush, never arrived.
func TestBacklogFlushAfterDispatcherOutageReachesAReadingClient(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	exchange := "test.feed." + uuid.NewString()
	t.Cleanup(func() { amqptest.DeleteExchange(t, exchange) })
	s := startStack(t, stackConfig{databaseURL: db.URL, dispatcherAMQP: amqptest.URL(), realtimeAMQP: amqptest.URL(), exchange: exchange})

	api := newAPIClient(t, s.apiURL)
	author, f, first := followedFeed(t, api, s.wsURL, "before the outage")

	// Dispatcher down (a graceful stop: nothing in flight), then the backlog.
	if err := s.dispatcher.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.dispatcher.Wait(ctx); err != nil {
		t.Fatalf("dispatcher stop: %v", err)
	}
	ids := append([]string{first}, createPosts(t, api, author, backlogPosts, 4)...)
	if n := pending(t, db.Pool); n != backlogPosts {
		t.Fatalf("outbox pending %d, want the backlog of %d", n, backlogPosts)
	}

	// Up; SIGKILL as soon as the flush reached the client; up again.
	framesBefore := f.frameCount()
	d2 := testinfra.StartProcess(t, "dispatcher2", socialBin, s.dispatcherEnv, "dispatcher")
	wait.For(t, 30*time.Second, "the first backlog frame at the client", func() bool { return f.frameCount() > framesBefore })
	d2.Kill(t)
	left := pending(t, db.Pool)
	testinfra.StartProcess(t, "dispatcher3", socialBin, s.dispatcherEnv, "dispatcher")
	wait.For(t, 60*time.Second, "backlog relayed", func() bool { return pending(t, db.Pool) == 0 })

	f.waitFor(ids, 60*time.Second)
	dups, _ := f.exactlyOnce(ids)
	f.inOrder()
	if f.connectCount() == 1 && dups > left {
		// Only the rows the killed dispatcher had claimed may come twice (at-least-once, §3).
		t.Errorf("%d duplicates on a socket that was never cut, more than the %d rows pending at the kill", dups, left)
	}
	t.Logf("%d posts; %d pending when the dispatcher was killed; %d frames, %d duplicates removed by dedupe; %d connections, close codes %v",
		len(ids), left, f.frameCount(), dups, f.connectCount(), f.codes())
}

// followedFeed registers an author and a follower, opens the follower's feed and waits for the
// author's first post (text) on it.
func followedFeed(t *testing.T, api *apiClient, wsURL, text string) (author user, f *feed, first string) {
	t.Helper()
	author = api.register("author")
	follower := api.register("follower")
	api.follow(follower, author)
	f = openFeed(t, context.Background(), wsURL, follower)
	r, first := api.post(author, text)
	api.must(r, "first post")
	f.waitFor([]string{first}, 15*time.Second)
	return author, f, first
}

// createPosts creates n posts by author with `workers` concurrent clients and returns their ids.
func createPosts(t *testing.T, api *apiClient, author user, n, workers int) []string {
	t.Helper()
	var (
		mu   sync.Mutex
		ids  []string
		errs []error
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				r, err := api.try("POST", "/post/create", author.token, map[string]string{"text": "backlog " + itoa(i)})
				var id string
				if err == nil && r.status == http.StatusOK {
					err = json.Unmarshal(r.body, &id)
				}
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case r.status != http.StatusOK:
					errs = append(errs, &statusError{r})
				default:
					ids = append(ids, id)
				}
				mu.Unlock()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		t.Fatalf("create post: %v", err)
	}
	return ids
}

type statusError struct{ r reply }

func (e *statusError) Error() string { return "status " + itoa(e.r.status) + ": " + string(e.r.body) }

// TestBrokerRestartWithAReadingClientLosesNothing restarts the RabbitMQ application of a private
// node (stop_app, start_app) while posts keep coming and a follower reads all along. The realtime
// instance's exclusive queue dies with its connection, so frames routed during the outage are
// dropped by the broker; when the subscriber is back, the hub fills the open socket's gap from
// PostgreSQL. The client must end with every post, in position order, on the socket it opened.
// Failure modes guarded: a socket kept open across the restart silently missing the outage's
// frames; a refill that leaves a gap or a duplicate between the database and the live queue.
func TestBrokerRestartWithAReadingClientLosesNothing(t *testing.T) {
	t.Parallel()
	node := testinfra.StartRabbitNodes(t, "restart")[0]
	db := pgtest.New(t)
	s := startStack(t, stackConfig{databaseURL: db.URL, dispatcherAMQP: node.URL(), realtimeAMQP: node.URL()})

	api := newAPIClient(t, s.apiURL)
	author, f, first := followedFeed(t, api, s.wsURL, "before the restart")

	p := startPoster(t, api, author, 20*time.Millisecond)
	wait.For(t, 10*time.Second, "posts flowing before the restart", func() bool { return p.count() >= 10 })
	node.StopApp(t)
	waitStatus(t, s.realtimeURL+"/readyz", http.StatusServiceUnavailable, 15*time.Second)
	atStop := p.count()
	wait.For(t, 15*time.Second, "posts created while the broker is down", func() bool { return p.count() >= atStop+20 })
	node.StartApp(t)
	waitStatus(t, s.realtimeURL+"/readyz", http.StatusOK, 30*time.Second)
	atStart := p.count()
	wait.For(t, 15*time.Second, "posts flowing after the restart", func() bool { return p.count() >= atStart+20 })
	ids := append([]string{first}, p.stop(t)...)
	wait.For(t, 30*time.Second, "outbox drained", func() bool { return pending(t, db.Pool) == 0 })

	f.waitFor(ids, 30*time.Second)
	dups, _ := f.exactlyOnce(ids)
	f.inOrder()
	if n := f.connectCount(); n != 1 {
		t.Errorf("%d connections (close codes %v), want the one the client opened", n, f.codes())
	}
	t.Logf("%d posts; %d frames, %d duplicates removed by dedupe; %d connections, close codes %v",
		len(ids), f.frameCount(), dups, f.connectCount(), f.codes())
}
