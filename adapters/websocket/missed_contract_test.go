package websocket_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/socialnet/social/adapters/postgres/pgtest"
	ws "github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

// checkMissedContract checks what the hub relies on from its resume port, for the real adapter
// (outbox.Resume) and the tests' fake alike: paging from since, each page from the last position
// of the one before, until one says no more, yields exactly want (the user's positions above
// since) in order, each once, no page longer than its limit; Newest is at or above all of them;
// a gap read is a well-formed feed message that does not go back.
func checkMissedContract(t *testing.T, m ws.MissedFrames, user string, since int64, want []int64) {
	t.Helper()
	ctx := context.Background()
	const limit = 2
	var got []int64
	after := since
	for pages := 0; ; pages++ {
		if pages > len(want)+2 {
			t.Fatalf("still paging after %d pages (at %d)", pages, after)
		}
		frames, last, more, err := m.Missed(ctx, user, after, limit, 1<<20, domain.RelayedEventTypesOf([]string{domain.KindPost}))
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) > limit || last < after {
			t.Fatalf("page after %d: %d frames, last %d", after, len(frames), last)
		}
		for _, b := range frames {
			var f domain.FeedFrame
			if err := json.Unmarshal(b, &f); err != nil {
				t.Fatal(err)
			}
			got = append(got, f.Position)
		}
		if !more {
			break
		}
		after = last
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged positions %v, want %v", got, want)
	}
	newest, err := m.Newest(ctx)
	if err != nil || (len(want) > 0 && newest < want[len(want)-1]) {
		t.Fatalf("newest %d (%v), below %v", newest, err, want)
	}
	msg, last, _, err := m.Gap(ctx, []string{user}, since, 100)
	if err != nil || last < since {
		t.Fatalf("gap after %d: last %d, %v", since, last, err)
	}
	if err := domain.EachDelivery(msg, func([]byte, domain.Recipients) {}); err != nil {
		t.Fatalf("gap message: %v", err)
	}
}

func TestMissedContractOfTheOutbox(t *testing.T) {
	t.Parallel()
	db := pgtest.New(t)
	author, reader, other := register(t, db, "author"), register(t, db, "reader"), register(t, db, "other")
	follow(t, db, reader, author)
	var want []int64
	first := postRelayed(t, db, author, "before since").Position
	for i := range 5 {
		want = append(want, postRelayed(t, db, author, "post").Position)
		postRelayed(t, db, other, "not followed "+string(rune('a'+i)))
	}
	checkMissedContract(t, outbox.NewResume(db.Pool), reader, first, want)
}

func TestMissedContractOfTheFake(t *testing.T) {
	t.Parallel()
	checkMissedContract(t, fakeMissedWith(7, ""), "u", 2, []int64{3, 4, 5, 6, 7})
}
