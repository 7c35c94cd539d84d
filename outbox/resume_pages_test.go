package outbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/outbox"
)

// TestResumePagesReadExactlyTheUsersFrames: a resume reads its pages by one of two plans, whichever
// bounds the page's cost (by the user's follows, or walking the outbox by position), and a page may
// end early at the end of the stretch it covered. Whatever the plan, the pages of a resume, read
// one after another as the realtime does, must be exactly the user's frames after since, in
// position order, of the types asked for: post rows of the authors they follow, rows naming them,
// relayed, re-enqueued by a replay or in flight, never a dead row, never a deleted post's frame.
// Positions have gaps, as after failed publishes. A user following more authors than a page reads
// rows, one following a few, from the start, the middle and near the newest position.
func TestResumePagesReadExactlyTheUsersFrames(t *testing.T) {
	t.Parallel()
	e := newDBEnv(t)
	rng := rand.New(rand.NewPCG(24, 8))
	authors := e.users(20000)
	prolific := authors[:50]
	others := e.users(4)
	people := e.users(2)
	heavy, light := people[0], people[1]
	follows := map[string]map[string]bool{heavy: {}, light: {}}
	for _, a := range authors[100:1300] { // more than a page reads rows, a few percent of the stream
		follows[heavy][a] = true
	}
	for _, a := range prolific[:30] {
		follows[light][a] = true
	}
	for u, set := range follows {
		e.db.Exec(t, `INSERT INTO friendships (user_id, friend_id) SELECT $1, unnest($2::uuid[])`, u, slices.Collect(maps.Keys(set)))
	}

	type row struct {
		pos                   int64
		author                string
		recipients            []string // nil: the followers rule
		status                string
		deleted, inflight     bool
		eventID, typ, payload string
	}
	var rows []row
	pos := int64(0)
	talkers := append([]string{heavy, light}, others...)
	for i := range 3000 {
		pos += 1 + int64(rng.IntN(3)) // gaps: positions dropped by failed publishes
		r := row{pos: pos, status: "relayed", eventID: uuid.Must(uuid.NewV7()).String()}
		message := func(from, to string) {
			r.author, r.recipients, r.typ = from, []string{from, to}, domain.EventDialogMessageSent
			p, _ := json.Marshal(domain.DialogMessageSent{MessageID: r.eventID, From: from, To: to, Text: fmt.Sprint("message ", i)})
			r.payload = string(p)
		}
		switch n := rng.IntN(100); {
		case n < 15: // a message between two of the talkers
			from, to := talkers[rng.IntN(len(talkers))], talkers[rng.IntN(len(talkers))]
			for to == from {
				to = talkers[rng.IntN(len(talkers))]
			}
			message(from, to)
		case n < 25: // a message from a followed author to someone else: their row, not for the followers
			message(prolific[rng.IntN(len(prolific))], others[rng.IntN(len(others))])
		default:
			r.author, r.typ = authors[rng.IntN(len(authors))], domain.EventPostCreated
			if rng.IntN(3) == 0 {
				r.author = prolific[rng.IntN(len(prolific))]
			}
			p, _ := json.Marshal(domain.PostChanged{PostID: r.eventID, AuthorUserID: r.author, Text: fmt.Sprint("post ", i)})
			r.payload = string(p)
			r.deleted = rng.IntN(40) == 0
		}
		switch n := rng.IntN(100); {
		case n < 2:
			r.status = "dead"
		case n < 4:
			r.status = "pending" // re-enqueued by a replay: keeps its position
		}
		if r.inflight = i >= 2980; r.inflight { // the last batch: claimed and published, not yet marked
			r.status = "pending"
		}
		rows = append(rows, r)
	}
	type record struct {
		EventID    string   `json:"event_id"`
		Type       string   `json:"type"`
		Payload    string   `json:"payload"`
		Author     string   `json:"author"`
		Recipients []string `json:"recipients"`
		Position   *int64   `json:"position"`
		Status     string   `json:"status"`
		Replay     bool     `json:"replay"`
		Post       bool     `json:"post"`
	}
	var records []record
	var inflight []row
	for _, r := range rows {
		rec := record{EventID: r.eventID, Type: r.typ, Payload: r.payload, Author: r.author, Recipients: r.recipients,
			Position: &r.pos, Status: r.status, Replay: r.status == "pending" && !r.inflight, Post: r.typ == domain.EventPostCreated && !r.deleted}
		if r.inflight {
			rec.Position = nil
			inflight = append(inflight, r)
		}
		records = append(records, rec)
	}
	data, _ := json.Marshal(records)
	e.db.Exec(t, `WITH x AS (SELECT * FROM jsonb_to_recordset($1::jsonb) AS x(event_id uuid, type text, payload text, author uuid,
			recipients uuid[], position bigint, status text, replay boolean, post boolean)),
		ev AS (INSERT INTO events (id, aggregate_id, aggregate_version, type, payload)
			SELECT event_id, event_id, 1, type, payload::jsonb FROM x),
		po AS (INSERT INTO posts (id, author_user_id, text, created_at, updated_at, version)
			SELECT event_id, author, 'now', now(), now(), 1 FROM x WHERE post)
		INSERT INTO outbox (event_id, author_user_id, recipients, position, status, keep_position)
			SELECT event_id, author, recipients, position, status, replay FROM x`, string(data))
	e.db.Exec(t, `INSERT INTO outbox_inflight (positions, event_ids, authors) VALUES ($1, $2, $3)`,
		mapRows(inflight, func(r row) int64 { return r.pos }), mapRows(inflight, func(r row) string { return r.eventID }),
		mapRows(inflight, func(r row) string { return r.author }))
	e.db.Exec(t, `ANALYZE`)

	want := func(user string, since int64, types []string) []int64 {
		var out []int64
		for _, r := range rows {
			for_ := r.recipients == nil && follows[user][r.author] || slices.Contains(r.recipients, user)
			if r.pos > since && r.status != "dead" && for_ && !r.deleted && (types == nil || slices.Contains(types, r.typ)) {
				out = append(out, r.pos)
			}
		}
		return out
	}
	resume := outbox.NewResume(e.db.Pool)
	read := func(user string, since int64, limit int, types []string) []int64 {
		t.Helper()
		var out []int64
		after := since
		for pages := 0; ; pages++ {
			if pages > 1000 {
				t.Fatalf("no end after %d pages", pages)
			}
			frames, last, more, err := resume.Missed(context.Background(), user, after, limit, 1<<20, types)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range frames {
				var f struct{ Position int64 }
				if err := json.Unmarshal(b, &f); err != nil {
					t.Fatal(err)
				}
				out = append(out, f.Position)
			}
			if last < after {
				t.Fatalf("page after %d ended at %d", after, last)
			}
			if !more {
				return out
			}
			after = last
		}
	}
	newest := rows[len(rows)-1].pos
	for _, c := range []struct {
		name  string
		user  string
		types []string
	}{
		{"follows 1,200", heavy, nil},
		{"follows 30", light, nil},
		{"follows 1,200, posts only", heavy, domain.RelayedEventTypesOf([]string{domain.KindPost})},
		{"follows 30, messages only", light, domain.RelayedEventTypesOf([]string{domain.KindDialog})},
	} {
		for _, since := range []int64{0, newest / 2, newest - 300} {
			for _, limit := range []int{100, 7} {
				got, exp := read(c.user, since, limit, c.types), want(c.user, since, c.types)
				if !slices.Equal(got, exp) {
					i := 0
					for i < min(len(got), len(exp)) && got[i] == exp[i] {
						i++
					}
					t.Errorf("%s, since %d, pages of %d: %d frames, want %d; they part at frame %d: got %v, want %v",
						c.name, since, limit, len(got), len(exp), i, got[i:min(i+5, len(got))], exp[i:min(i+5, len(exp))])
				}
			}
		}
	}
}

func mapRows[T, V any](rows []T, f func(T) V) []V {
	out := make([]V, len(rows))
	for i, r := range rows {
		out[i] = f(r)
	}
	return out
}
