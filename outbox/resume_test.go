package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

// Resume reads both recipient rules of the domain from the rows: a row without recipients reaches
// the author's followers, a row with recipients exactly them, relayed or in flight (claimed and
// published, not yet marked: outbox_inflight), each once.
func TestResumeFollowsEachRowsRecipients(t *testing.T) {
	t.Parallel()
	e := newDBEnv(t)
	us := e.users(4)
	author, follower, recipient, stranger := us[0], us[1], us[2], us[3]
	e.follow(author, []string{follower})
	// row inserts an event of author and its outbox row; recipients nil: the followers rule.
	row := func(text string, recipients []string, position int64, status string) string {
		t.Helper()
		id := uuid.Must(uuid.NewV7()).String()
		payload, _ := json.Marshal(domain.PostChanged{PostID: id, AuthorUserID: author, Text: text})
		e.db.Exec(t, `INSERT INTO events (id, aggregate_id, aggregate_version, type, payload) VALUES ($1, $1, 1, 'post.created', $2)`, id, payload)
		e.db.Exec(t, `INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version) VALUES ($1, $2, $3, now(), now(), 1)`, id, author, text)
		var pos any
		if position > 0 {
			pos = position
		}
		e.db.Exec(t, `INSERT INTO outbox (event_id, author_user_id, recipients, position, status) VALUES ($1, $2, $3, $4, $5)`,
			id, author, recipients, pos, status)
		return id
	}
	row("to followers", nil, 1, "relayed")
	row("to author and recipient", []string{author, recipient}, 2, "relayed")
	inflightExplicit := row("in flight to recipient", []string{recipient}, 0, "pending")
	inflightFollowers := row("in flight to followers", nil, 0, "pending")
	row("dead to recipient", []string{recipient}, 5, "dead")
	row("pending, not claimed", []string{recipient}, 0, "pending")
	e.db.Exec(t, `INSERT INTO outbox_inflight (positions, event_ids, authors) VALUES ('{3,4}', ARRAY[$1, $2]::uuid[], ARRAY[$3, $3]::uuid[])`,
		inflightExplicit, inflightFollowers, author)

	missed := func(user string, after int64) []string {
		t.Helper()
		raw, _, _, err := outbox.NewResume(e.db.Pool).Missed(context.Background(), user, after, 100, 1<<20, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range raw {
			var f domain.FeedFrame
			if err := json.Unmarshal(b, &f); err != nil {
				t.Fatal(err)
			}
			out = append(out, f.PostText)
		}
		return out
	}
	for _, c := range []struct {
		name, user string
		after      int64
		want       []string
	}{
		{"follower", follower, 0, []string{"to followers", "in flight to followers"}},
		{"recipient", recipient, 0, []string{"to author and recipient", "in flight to recipient"}},
		{"recipient after 2", recipient, 2, []string{"in flight to recipient"}},
		{"author (a recipient, not a follower)", author, 0, []string{"to author and recipient"}},
		{"stranger", stranger, 0, nil},
	} {
		if got := missed(c.user, c.after); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// A resume page is bounded in bytes as well as rows: frames stop once they hold maxBytes (at
// least one is returned), and last/more say where the next page starts, so a resume of long
// posts holds one bounded page per socket.
func TestResumePageIsBoundedInBytes(t *testing.T) {
	t.Parallel()
	e := newDBEnv(t)
	us := e.users(2)
	author, follower := us[0], us[1]
	e.follow(author, []string{follower})
	text := strings.Repeat("x", 10_000)
	for range 5 {
		e.post(author, text)
	}
	opsRelayAll(t, e.db)
	r := outbox.NewResume(e.db.Pool)
	frames, last, more, err := r.Missed(context.Background(), follower, 0, 100, 15_000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 2 || last != 2 || !more {
		t.Fatalf("%d frames, last %d, more %v; want 2 frames (the second crosses 15,000 bytes), last 2, more", len(frames), last, more)
	}
	frames, last, more, err = r.Missed(context.Background(), follower, 0, 100, 1, nil)
	if err != nil || len(frames) != 1 || last != 1 || !more {
		t.Fatalf("a bound below one frame: %d frames, last %d, more %v, %v; want the first frame alone", len(frames), last, more, err)
	}
	frames, last, more, err = r.Missed(context.Background(), follower, 2, 100, 1<<20, nil)
	if err != nil || len(frames) != 3 || last != 5 || more {
		t.Fatalf("the rest: %d frames, last %d, more %v, %v; want 3, last 5, no more", len(frames), last, more, err)
	}
	if newest, err := r.Newest(context.Background()); err != nil || newest != 5 {
		t.Fatalf("newest %d, %v; want 5", newest, err)
	}
}

// TestGapNamesEachFramesRecipientsAmongTheInstancesUsers: after a broker reconnect an instance
// reads its gap once: every frame above the last it received that goes to one of its users, with
// those users named, in position order; the limit says when to fall back to per-socket resumes.
func TestGapNamesEachFramesRecipientsAmongTheInstancesUsers(t *testing.T) {
	t.Parallel()
	e := newDBEnv(t)
	us := e.users(5)
	author, here1, here2, elsewhere, quiet := us[0], us[1], us[2], us[3], us[4]
	e.follow(author, []string{here1, here2, elsewhere})
	before := e.post(author, "before the gap")
	opsRelayAll(t, e.db)
	var after int64
	if err := e.db.Pool.QueryRow(context.Background(), `SELECT max(position) FROM outbox`).Scan(&after); err != nil {
		t.Fatal(err)
	}
	first, second := e.post(author, "in the gap 1"), e.post(author, "in the gap 2")
	opsRelayAll(t, e.db)
	_ = before

	r := outbox.NewResume(e.db.Pool)
	msg, last, more, err := r.Gap(context.Background(), []string{here1, here2, quiet}, after, 10)
	if err != nil || more {
		t.Fatalf("gap: more %v, %v", more, err)
	}
	var got []string
	if err := domain.EachDelivery(msg, func(frame []byte, to domain.Recipients) {
		var f domain.FeedFrame
		_ = json.Unmarshal(frame, &f)
		sorted := slices.Sorted(slices.Values(to.Strings()))
		got = append(got, fmt.Sprintf("%s %v", f.PostText, sorted))
		if f.PostID != first.ID && f.PostID != second.ID {
			t.Errorf("frame of post %s, want only the gap's", f.PostID)
		}
	}); err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values([]string{here1, here2}))
	if len(got) != 2 || got[0] != fmt.Sprintf("in the gap 1 %v", want) || got[1] != fmt.Sprintf("in the gap 2 %v", want) {
		t.Fatalf("gap %v, want both posts to %v in order", got, want)
	}
	if last <= after {
		t.Errorf("last %d, want above %d", last, after)
	}
	if _, _, more, _ := r.Gap(context.Background(), []string{here1}, after, 1); !more {
		t.Error("a gap longer than the limit did not say more")
	}
}
