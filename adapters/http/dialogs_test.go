package http_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	httpapi "github.com/socialnet/social/adapters/http"
)

// otherID is a second well-formed id no user has.
const otherID = "01939c5e-0000-7000-8000-000000000001"

type dialogMessage struct {
	From      string    `json:"from"`
	To        string    `json:"to"`
	Text      string    `json:"text"`
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
}

func (a *testAPI) send(from, to user, text string) {
	a.t.Helper()
	res := a.do("POST", "/dialog/"+to.ID+"/send", from.Token, map[string]string{"text": text})
	if res.Status != 200 || len(res.Body) != 0 {
		a.t.Fatalf("send: %d %q, want 200 and an empty body", res.Status, res.Body)
	}
}

func (a *testAPI) dialog(u user, peer string, query string) ([]dialogMessage, response) {
	a.t.Helper()
	res := a.do("GET", "/dialog/"+peer+"/list"+query, u.Token, nil)
	if res.Status != 200 {
		a.t.Fatalf("list: %d %s", res.Status, res.Body)
	}
	var msgs []dialogMessage
	res.JSON(a.t, &msgs)
	return msgs, res
}

// The two endpoints of OTUS 1.2.0: a message is sent with an empty 200, and both users read the
// same dialog, oldest first, as {from, to, text} plus id and created_at.
func TestDialogSendAndList(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	a, b := api.register("Anna", "Dialog"), api.register("Boris", "Dialog")
	before := time.Now().Add(-time.Second)
	api.send(a, b, "hello, Boris")
	api.send(b, a, "hi <Anna> & all")
	api.send(a, b, "how are you?")

	want := []struct{ from, to, text string }{{a.ID, b.ID, "hello, Boris"}, {b.ID, a.ID, "hi <Anna> & all"}, {a.ID, b.ID, "how are you?"}}
	var ids []string
	for _, reader := range []struct {
		u    user
		peer user
	}{{a, b}, {b, a}} {
		msgs, res := api.dialog(reader.u, reader.peer.ID, "")
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("content type %q", ct)
		}
		if !strings.Contains(string(res.Body), `"hi <Anna> & all"`) {
			t.Errorf("text HTML-escaped: %s", res.Body)
		}
		if len(msgs) != len(want) {
			t.Fatalf("%d messages, want %d: %s", len(msgs), len(want), res.Body)
		}
		for i, m := range msgs {
			if m.From != want[i].from || m.To != want[i].to || m.Text != want[i].text || len(m.ID) != 36 ||
				m.CreatedAt.Before(before) || m.CreatedAt.Location() != time.UTC {
				t.Errorf("message %d: %+v, want %+v", i, m, want[i])
			}
			if reader.u == a {
				ids = append(ids, m.ID)
			} else if m.ID != ids[i] {
				t.Errorf("the two users see message %d as %s and %s", i, ids[i], m.ID)
			}
		}
		if l := res.Header.Get("Link"); l != "" {
			t.Errorf("Link %q on a whole dialog", l)
		}
	}
	// Each message is an event with its outbox row naming both users, in the same transaction.
	if n := api.db.Count(t, "events", "type = 'dialog.message_sent'"); n != 3 {
		t.Errorf("%d events, want 3", n)
	}
	if n := api.db.Count(t, "outbox", fmt.Sprintf("recipients @> ARRAY['%s'::uuid, '%s'::uuid] AND cardinality(recipients) = 2", a.ID, b.ID)); n != 3 {
		t.Errorf("%d outbox rows to both users, want 3", n)
	}
}

// Only the two users read a dialog: a third user naming either of them reads their own (empty)
// dialog with that user, never the messages of the two.
func TestDialogNonParticipantSeesNothing(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	a, b, c := api.register("Anna", "Pair"), api.register("Boris", "Pair"), api.register("Clara", "Third")
	api.send(a, b, "private")
	for _, peer := range []user{a, b} {
		if msgs, res := api.dialog(c, peer.ID, ""); len(msgs) != 0 || string(res.Body) != "[]\n" {
			t.Errorf("the third user reads %s with %s", res.Body, peer.ID)
		}
	}
	api.send(c, a, "from Clara")
	if msgs, _ := api.dialog(b, a.ID, ""); len(msgs) != 1 || msgs[0].Text != "private" {
		t.Errorf("Boris's dialog with Anna: %+v", msgs)
	}
	if msgs, _ := api.dialog(a, c.ID, ""); len(msgs) != 1 || msgs[0].Text != "from Clara" {
		t.Errorf("Anna's dialog with Clara: %+v", msgs)
	}
}

// Bad input is a 4xx JSON error that stores nothing.
func TestDialogErrors(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	a, b := api.register("Anna", "Errors"), api.register("Boris", "Errors")
	ghost, _ := api.tokens.Issue(unknownID) // a valid token of a user this database lacks
	for name, r := range map[string]struct {
		method, path, token string
		body                any
		status              int
	}{
		"send without a token":      {"POST", "/dialog/" + b.ID + "/send", "", `{"text":"x"}`, 401},
		"send with a bad token":     {"POST", "/dialog/" + b.ID + "/send", "nope", `{"text":"x"}`, 401},
		"list without a token":      {"GET", "/dialog/" + b.ID + "/list", "", nil, 401},
		"send to an unknown user":   {"POST", "/dialog/" + unknownID + "/send", a.Token, `{"text":"x"}`, 404},
		"list with an unknown user": {"GET", "/dialog/" + unknownID + "/list", a.Token, nil, 404},
		"send from an unknown user": {"POST", "/dialog/" + b.ID + "/send", ghost, `{"text":"x"}`, 401},
		"send to yourself":          {"POST", "/dialog/" + a.ID + "/send", a.Token, `{"text":"x"}`, 400},
		"list with yourself":        {"GET", "/dialog/" + a.ID + "/list", a.Token, nil, 400},
		"send to a malformed id":    {"POST", "/dialog/42/send", a.Token, `{"text":"x"}`, 400},
		"list with a malformed id":  {"GET", "/dialog/42/list", a.Token, nil, 400},
		"empty text":                {"POST", "/dialog/" + b.ID + "/send", a.Token, `{"text":""}`, 400},
		"no text":                   {"POST", "/dialog/" + b.ID + "/send", a.Token, `{}`, 400},
		"whitespace text":           {"POST", "/dialog/" + b.ID + "/send", a.Token, `{"text":" \n\t"}`, 400},
		"NUL in text":               {"POST", "/dialog/" + b.ID + "/send", a.Token, `{"text":"a\u0000b"}`, 400},
		"text too long":             {"POST", "/dialog/" + b.ID + "/send", a.Token, map[string]string{"text": strings.Repeat("я", 10001)}, 400},
		"text not a string":         {"POST", "/dialog/" + b.ID + "/send", a.Token, `{"text":5}`, 400},
		"body not JSON":             {"POST", "/dialog/" + b.ID + "/send", a.Token, `text=x`, 400},
		"invalid UTF-8":             {"POST", "/dialog/" + b.ID + "/send", a.Token, "{\"text\":\"\xff\"}", 400},
		"limit 0":                   {"GET", "/dialog/" + b.ID + "/list?limit=0", a.Token, nil, 400},
		"limit over 1000":           {"GET", "/dialog/" + b.ID + "/list?limit=1001", a.Token, nil, 400},
		"limit not a number":        {"GET", "/dialog/" + b.ID + "/list?limit=x", a.Token, nil, 400},
		"before not a message id":   {"GET", "/dialog/" + b.ID + "/list?before=x", a.Token, nil, 400},
		"body over 1 MiB":           {"POST", "/dialog/" + b.ID + "/send", a.Token, `{"text":"` + strings.Repeat("x", 1<<20) + `"}`, 413},
	} {
		t.Run(name, func(t *testing.T) {
			expectError(t, api.do(r.method, r.path, r.token, r.body), r.status)
		})
	}
	if n := api.db.Count(t, "dialog_messages"); n != 0 {
		t.Errorf("%d messages stored by refused requests", n)
	}
	if n := api.db.Count(t, "outbox"); n != 0 {
		t.Errorf("%d outbox rows written by refused requests", n)
	}
	// The longest text is accepted.
	api.send(a, b, strings.Repeat("я", 10000))
}

// A dialog is read in bounded pages, newest messages first taken, each page oldest first, with a
// Link to the older ones: following the Links reads every message once.
func TestDialogPages(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	a, b := api.register("Anna", "Pages"), api.register("Boris", "Pages")
	for i := range 7 {
		api.send(a, b, fmt.Sprint("m", i))
	}
	msgs, res := api.dialog(b, a.ID, "?limit=3")
	if got := texts(msgs); got != "m4,m5,m6" {
		t.Fatalf("first page %s", got)
	}
	var all []string
	for {
		all = append(strings.Split(texts(msgs), ","), all...)
		link := res.Header.Get("Link")
		if link == "" {
			break
		}
		next, ok := strings.CutPrefix(link, "<")
		next, _, _ = strings.Cut(next, ">")
		if !ok || !strings.HasPrefix(next, "/dialog/"+a.ID+"/list?limit=3&before=") || !strings.HasSuffix(link, `>; rel="next"`) {
			t.Fatalf("Link %q", link)
		}
		res = api.do("GET", next, b.Token, nil)
		msgs = nil
		res.JSON(t, &msgs)
	}
	if got := strings.Join(all, ","); got != "m0,m1,m2,m3,m4,m5,m6" {
		t.Errorf("read through the Links: %s", got)
	}
}

func texts(msgs []dialogMessage) string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.Text)
	}
	return strings.Join(out, ",")
}

// A response is at most FEED_PAGE_MAX_BYTES like the feed's (docs/limits.md): 60 of the longest
// messages (1.2 MB of text) come as pages under 1 MiB, the newest first taken, with Links on.
func TestDialogPageIsBoundedInBytes(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	a, b := api.register("Anna", "Bytes"), api.register("Boris", "Bytes")
	for i := range 60 {
		api.send(a, b, fmt.Sprintf("%02d", i)+strings.Repeat("я", 9998))
	}
	seen, path := 0, "/dialog/"+a.ID+"/list?limit=1000"
	last := "99"
	for path != "" {
		res := api.do("GET", path, b.Token, nil)
		if res.Status != 200 || len(res.Body) > httpapi.DefaultFeedMaxBytes {
			t.Fatalf("%s: %d, %d bytes", path, res.Status, len(res.Body))
		}
		var msgs []dialogMessage
		res.JSON(t, &msgs)
		if len(msgs) == 0 {
			t.Fatalf("%s: an empty page", path)
		}
		if n := msgs[len(msgs)-1].Text[:2]; n >= last {
			t.Fatalf("page ends with message %s after one that began with %s", n, last)
		}
		last = msgs[0].Text[:2]
		seen += len(msgs)
		path = ""
		if l := res.Header.Get("Link"); l != "" {
			path = strings.TrimPrefix(strings.Split(l, ">")[0], "<")
		}
	}
	if seen != 60 || last != "00" {
		t.Errorf("read %d messages, the oldest %s", seen, last)
	}
}
