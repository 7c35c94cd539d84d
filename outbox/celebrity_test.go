package outbox_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/socialnet/social/internal/wait"

	"github.com/google/uuid"

	"github.com/socialnet/social/outbox"
)

// TestCelebrityBurstDoesNotHoldOtherAuthors: an author with 100,000 followers, 10,000 of them online
// on two instances, posts 10 times in 2 s while another author posts beside them. Every online
// follower gets each post once, the other author's posts are all delivered, and the outbox
// empties — under the generic plan the leader uses and under custom plans alike. Failure mode
// guarded (found from outside): an ordering query whose cost grew with (big posts in flight) ×
// (their remaining followers) × (page size), whose cached generic plan ran for minutes while
// every other author's post waited. Routing reads presence per batch at a cost bounded by the
// users online, whatever the plan.
func TestCelebrityBurstDoesNotHoldOtherAuthors(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 followers")
	}
	t.Parallel()
	e := newEnv(t)
	ids := make([]string, 100_003)
	for i := range ids {
		ids[i] = uuid.Must(uuid.NewV7()).String()
	}
	e.db.Exec(t, `INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version)
		SELECT id, 'F', 'S', '2000-01-01', '', 'City', 'x', 1 FROM unnest($1::uuid[]) AS id`, ids)
	celebrity, other, reader, followers := ids[0], ids[1], ids[2], ids[3:]
	e.follow(celebrity, followers)
	e.follow(other, []string{reader})
	e.db.Exec(t, `ANALYZE friendships`)
	online := followers[:10_000]
	fans := []*consumer{e.connected(online[:5000]...), e.connected(online[5000:]...)}
	friend := e.connected(reader)

	for _, mode := range []string{"force_generic_plan", "force_custom_plan"} {
		t.Run(mode, func(t *testing.T) {
			stop := e.relay(outbox.WithPlanCacheMode(outbox.Config{}, mode))
			defer stop()
			before := len(friend.deliveries())
			var wg sync.WaitGroup
			var big []string
			for i := range 10 {
				big = append(big, e.post(celebrity, fmt.Sprintf("%s %d", mode, i)).ID)
				wg.Go(func() { e.post(other, fmt.Sprintf("%s beside %d", mode, i)) })
				time.Sleep(200 * time.Millisecond) // the burst's pace: 10 posts in 2 s
			}
			wg.Wait()
			wait.For(t, 60*time.Second, "the other author's posts", func() bool { return len(friend.deliveries()) == before+10 })
			wait.For(t, 60*time.Second, "the outbox empty", func() bool { return e.db.Count(t, "outbox", "status = 'pending'") == 0 })
			wait.For(t, 30*time.Second, "every online follower has every post", func() bool {
				n := 0
				for _, c := range fans {
					for _, d := range c.deliveries() {
						n += len(d.recipients())
					}
				}
				return n >= len(online)*len(big)*(map[string]int{"force_generic_plan": 1, "force_custom_plan": 2}[mode])
			})
			seen := map[[2]string]int{}
			for _, c := range fans {
				for k, n := range recipientCount(c.deliveries()) {
					seen[k] += n
				}
			}
			for _, id := range big {
				for _, f := range []string{online[0], online[4999], online[5000], online[9999]} {
					if n := seen[[2]string{f, id + "post.created"}]; n != 1 {
						t.Fatalf("follower %s got post %s %d times, want once", f, id, n)
					}
				}
			}
			if n := seen[[2]string{followers[10_000], big[0] + "post.created"}]; n != 0 {
				t.Fatalf("an offline follower was named %d times", n)
			}
		})
	}
}
