package outbox

import (
	"fmt"
	"testing"
)

func followerIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("00000000-0000-0000-0000-%012d", i)
	}
	return ids
}

// A row's first page starts with a short message (the first sockets do not wait for RabbitMQ to
// route 1,000 keys), then full-size messages; every follower is named once, in order.
func TestFirstPageLeadsWithAShortMessage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		followers int
		sp        split
		lead      int
		want      []int // recipients per message
	}{
		{"1,000 followers", 1000, split{size: 1000, lanes: 1}, leadFollowers, []int{100, 900}},
		{"2,500 followers", 2500, split{size: 1000, lanes: 1}, leadFollowers, []int{100, 1000, 1000, 400}},
		{"at most the lead", 100, split{size: 1000, lanes: 1}, leadFollowers, []int{100}},
		{"messages smaller than the lead", 250, split{size: 50, lanes: 1}, leadFollowers, []int{50, 50, 50, 50, 50}},
		{"a later page", 1000, split{size: 1000, lanes: 1}, 0, []int{1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids := followerIDs(tc.followers)
			p := newPage(ids, readPageSize, tc.sp, tc.lead)
			var got []int
			var named []string
			for _, m := range p.msgs {
				got = append(got, 1+len(m.cc))
				named = append(named, m.key)
				for _, c := range m.cc {
					named = append(named, c.(string))
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("recipients per message %v, want %v", got, tc.want)
			}
			if fmt.Sprint(named) != fmt.Sprint(ids) {
				t.Fatal("the messages do not name every follower once, in order")
			}
		})
	}
	// With lanes, each lane's first message is the short one.
	p := newPage(followerIDs(3000), readPageSize, split{size: 1000, lanes: 2}, leadFollowers)
	firstOfLane := map[int]int{}
	for _, m := range p.msgs {
		if _, ok := firstOfLane[m.lane]; !ok {
			firstOfLane[m.lane] = 1 + len(m.cc)
		}
	}
	if len(firstOfLane) != 2 || firstOfLane[0] != leadFollowers || firstOfLane[1] != leadFollowers {
		t.Fatalf("first message per lane %v, want %d on both", firstOfLane, leadFollowers)
	}
}
