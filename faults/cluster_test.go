//go:build faults

package faults

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/socialnet/social/internal/wait"

	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/faults/testinfra"
)

// TestClusterFailoverLosesNoPost runs the dispatcher on node A and the realtime instance on node
// B of a two-node RabbitMQ cluster. A post crosses the cluster (published on A, queued on B).
// Then node B is stopped while posts keep coming: the realtime instance must move to A, declare
// its queue and its one binding there and fill each open socket's gap from the outbox. No socket
// is closed: each follower ends with every post, in order, on the connection it opened.
func TestClusterFailoverLosesNoPost(t *testing.T) {
	t.Parallel()
	nodes := testinfra.StartRabbitNodes(t, "a", "b")
	a, b := nodes[0], nodes[1]
	b.JoinCluster(t, a)
	if status := a.Ctl(t, "cluster_status"); !strings.Contains(status, b.Name) {
		t.Fatalf("node b did not join node a's cluster:\n%s", status)
	}

	db := pgtest.New(t)
	s := startStack(t, stackConfig{
		databaseURL: db.URL,
		// Each process connects to the first reachable node of its list.
		dispatcherAMQP: a.URL() + "," + b.URL(),
		realtimeAMQP:   b.URL() + "," + a.URL(),
	})
	if br := BrokerOf(t, s.realtime, 0, "rabbitmq subscriber connected", 30*time.Second); !onPort(br, b.Port) {
		t.Fatalf("realtime connected to %s, want node b (port %d)", br, b.Port)
	}

	api := newAPIClient(t, s.apiURL)
	author := api.register("author")
	ctx := context.Background()
	var feeds []*feed
	var followers []user
	for i := range 3 {
		f := api.register("follower" + itoa(i))
		api.follow(f, author)
		followers = append(followers, f)
		feeds = append(feeds, openFeed(t, ctx, s.wsURL, f))
	}

	// One post crosses the cluster: published on A, routed to the queue on B.
	r, first := api.post(author, "hello across the cluster")
	api.must(r, "first post")
	for _, f := range feeds {
		f.waitFor([]string{first}, 15*time.Second)
	}
	if conns := connectionsByPort(t, a); conns[a.Port] != 1 || conns[b.Port] != 1 {
		t.Fatalf("connections by node port %v: want the dispatcher on a (%d) and realtime on b (%d)", conns, a.Port, b.Port)
	}

	// Posts keep flowing while node B goes away.
	p := startPoster(t, api, author, 25*time.Millisecond)
	wait.For(t, 10*time.Second, "posts flowing before the failover", func() bool { return p.count() >= 10 })
	from := s.realtime.Lines()
	stopped := time.Now()
	b.Stop(t)
	if br := BrokerOf(t, s.realtime, from, "rabbitmq subscriber connected", 30*time.Second); !onPort(br, a.Port) {
		t.Fatalf("realtime reconnected to %s, want node a (port %d)", br, a.Port)
	}
	t.Logf("realtime moved from node b to node a %s after b was told to stop", time.Since(stopped).Round(time.Millisecond))
	waitStatus(t, s.realtimeURL+"/readyz", 200, 10*time.Second)
	// The instance's queue is bound again with its id, on the surviving node; no user binding
	// anywhere.
	wait.For(t, 10*time.Second, "the instance's binding on node a", func() bool {
		bound := bindings(t, a)
		instance := false
		for k := range bound {
			instance = instance || strings.HasPrefix(k, "rt-")
		}
		return instance && !bound[followers[0].id]
	})
	after := p.count()
	wait.For(t, 10*time.Second, "posts flowing after the failover", func() bool { return p.count() >= after+20 })
	ids := append([]string{first}, p.stop(t)...)

	for i, f := range feeds {
		f.waitFor(ids, 30*time.Second)
		dups, _ := f.exactlyOnce(ids)
		f.inOrder()
		if n := f.connectCount(); n != 1 {
			t.Errorf("follower %d: %d connections (close codes %v), want the one it opened", i, n, f.codes())
		}
		t.Logf("follower %d: %d posts, %d duplicates removed by dedupe, %d connections", i, len(ids), dups, f.connectCount())
	}
}

// connectionsByPort counts the cluster's client connections by the node port they reached.
func connectionsByPort(t *testing.T, n *testinfra.RabbitNode) map[int]int {
	t.Helper()
	out := map[int]int{}
	for _, line := range strings.Split(n.Ctl(t, "list_connections", "--no-table-headers", "port"), "\n") {
		if p := strings.TrimSpace(line); p != "" {
			out[atoi(p)]++
		}
	}
	return out
}

// bindings returns the routing keys bound to realtime queues.
func bindings(t *testing.T, n *testinfra.RabbitNode) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, line := range strings.Split(n.Ctl(t, "list_bindings", "--no-table-headers", "destination_name", "routing_key"), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && strings.HasPrefix(f[0], "social.realtime.") {
			out[f[1]] = true
		}
	}
	return out
}
