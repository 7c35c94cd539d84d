package outbox_test

import (
	"context"
	"encoding/json"
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
