package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Every relayed post type encodes the frame of design.md §4, the same bytes the relay sends and
// resume reads back: the one encoder both call.
func TestEncodeFrameOfPostEvents(t *testing.T) {
	at := time.Date(2026, 12, 2, 1, 2, 3, 0, time.FixedZone("X", 3600))
	p := PostChanged{PostID: "p1", AuthorUserID: "a1", Text: "hello"}
	payload, _ := json.Marshal(p)
	for _, typ := range []string{EventPostCreated, EventPostUpdated, EventPostDeleted} {
		b, err := EncodeFrame(typ, payload, 42, at, Now{Found: typ != EventPostDeleted, Text: "hello"})
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		var got map[string]any
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		text := "hello"
		if typ == EventPostDeleted {
			text = ""
		}
		want := map[string]any{"postId": "p1", "postText": text, "author_user_id": "a1", "type": typ,
			"position": float64(42), "created_at": "2026-12-02T00:02:03Z"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s frame %s, want %v", typ, b, want)
		}
		r, _, err := DecodeRelayed(typ, payload, 42, at, Now{Found: true, Text: "hello"})
		if err != nil || r.Author != "a1" || r.Recipients != nil {
			t.Errorf("%s route %+v (%v), want the author's followers", typ, r, err)
		}
		if a, ok := AudienceOf(typ); !ok || a != AudienceFollowers {
			t.Errorf("%s audience %v %v", typ, a, ok)
		}
	}
}

// A frame carries what is true now (design.md §4): an edited post its current text, a deleted
// post nothing but its tombstone, whatever text the event was written with.
func TestPostFramesCarryWhatIsTrueNow(t *testing.T) {
	at := time.Now()
	payload, _ := json.Marshal(PostChanged{PostID: "p1", AuthorUserID: "a1", Text: "the secret"})
	for _, typ := range []string{EventPostCreated, EventPostUpdated} {
		b, err := EncodeFrame(typ, payload, 1, at, Now{Found: true, Text: "edited"})
		if err != nil || strings.Contains(string(b), "secret") || !strings.Contains(string(b), `"postText":"edited"`) {
			t.Errorf("%s of an edited post: %s, %v", typ, b, err)
		}
		r, b, err := DecodeRelayed(typ, payload, 1, at, Now{})
		if !errors.Is(err, ErrSuperseded) || b != nil || r.Author != "a1" {
			t.Errorf("%s of a deleted post: %+v %s %v, want ErrSuperseded with its route", typ, r, b, err)
		}
	}
	b, err := EncodeFrame(EventPostDeleted, payload, 1, at, Now{})
	if err != nil || strings.Contains(string(b), "secret") || !strings.Contains(string(b), `"postText":""`) {
		t.Errorf("tombstone %s, %v", b, err)
	}
}

func TestUnknownEventTypesAreRefused(t *testing.T) {
	for _, typ := range []string{"", EventUserRegistered, EventFriendAdded, "post.created.v2"} {
		if _, err := EncodeFrame(typ, []byte(`{}`), 1, time.Now(), Now{}); !errors.Is(err, ErrUnknownEventType) {
			t.Errorf("EncodeFrame(%q): %v, want ErrUnknownEventType", typ, err)
		}
		if _, err := OutboxRoute(typ, PostChanged{AuthorUserID: "a"}); !errors.Is(err, ErrUnknownEventType) {
			t.Errorf("OutboxRoute(%q): %v, want ErrUnknownEventType", typ, err)
		}
		if IsRelayedEventType(typ) {
			t.Errorf("%q relayed", typ)
		}
	}
	// A known type with a payload it cannot read is an error too, but not "unknown".
	if _, err := EncodeFrame(EventPostCreated, []byte(`[1]`), 1, time.Now(), Now{Found: true}); err == nil || errors.Is(err, ErrUnknownEventType) {
		t.Errorf("undecodable payload: %v", err)
	}
	if got := strings.Join(RelayedEventTypes(), ","); got != "dialog.message_sent,post.created,post.deleted,post.updated" {
		t.Errorf("relayed types %s", got)
	}
}

func TestOutboxRouteOfPostEvents(t *testing.T) {
	p := PostChanged{PostID: "p", AuthorUserID: "a"}
	for _, payload := range []any{p, &p} {
		r, err := OutboxRoute(EventPostUpdated, payload)
		if err != nil || r.Author != "a" || r.Recipients != nil {
			t.Errorf("OutboxRoute(%T) = %+v, %v", payload, r, err)
		}
	}
	if _, err := OutboxRoute(EventPostCreated, FriendChanged{UserID: "a"}); err == nil {
		t.Error("a friend payload routed as a post")
	}
	if _, err := OutboxRoute(EventPostCreated, PostChanged{PostID: "p"}); err == nil {
		t.Error("a post without an author routed")
	}
}

// testMessage stands for an event type with explicit recipients (a dialog message), registered
// only in this test: the rule the relay and resume follow for it is the generic one.
type testMessage struct {
	From, To string
	Extra    []string
}

func (m testMessage) Route() Route {
	return Route{Author: m.From, Recipients: append([]string{m.From, m.To}, m.Extra...)}
}

type testMessageFrame struct {
	Type     string `json:"type"`
	From     string `json:"from"`
	Position int64  `json:"position"`
}

func TestExplicitRecipients(t *testing.T) {
	const typ = "test.message_sent"
	relayedTypes[typ] = relayedJSON(AudienceRecipients, func(_ string, m testMessage, pos int64, _ time.Time) testMessageFrame {
		return testMessageFrame{Type: "test.message", From: m.From, Position: pos}
	})
	t.Cleanup(func() { delete(relayedTypes, typ) })

	r, err := OutboxRoute(typ, testMessage{From: "u1", To: "u2"})
	if err != nil || r.Author != "u1" || !reflect.DeepEqual(r.Recipients, []string{"u1", "u2"}) {
		t.Fatalf("route %+v, %v", r, err)
	}
	payload, _ := json.Marshal(testMessage{From: "u1", To: "u2"})
	r, b, err := DecodeRelayed(typ, payload, 7, time.Now(), Now{})
	if err != nil || !reflect.DeepEqual(r.Recipients, []string{"u1", "u2"}) || string(b) != `{"type":"test.message","from":"u1","position":7}` {
		t.Fatalf("decoded %+v %s %v", r, b, err)
	}
	many := make([]string, MaxRecipients)
	for i := range many {
		many[i] = fmt.Sprint("x", i)
	}
	for name, m := range map[string]testMessage{
		"to yourself (a recipient twice)": {From: "u1", To: "u1"},
		"an empty recipient":              {From: "u1", To: ""},
		"more than MaxRecipients":         {From: "u1", To: "u2", Extra: many},
	} {
		if _, err := OutboxRoute(typ, m); err == nil {
			t.Errorf("%s: routed", name)
		}
	}
}

// A dialog message goes to exactly its two users (the sender's other tabs too), ordered per
// sender, as the frame of design.md §4; writing to yourself is refused before any route is made.
func TestDialogMessageIsRelayedToBothUsers(t *testing.T) {
	at := time.Date(2026, 12, 2, 1, 2, 3, 0, time.FixedZone("X", 3600))
	m := DialogMessageSent{MessageID: "m1", From: "u1", To: "u2", Text: "hi <there>"}
	r, err := OutboxRoute(EventDialogMessageSent, m)
	if err != nil || r.Author != "u1" || !reflect.DeepEqual(r.Recipients, []string{"u1", "u2"}) {
		t.Fatalf("route %+v, %v", r, err)
	}
	if a, ok := AudienceOf(EventDialogMessageSent); !ok || a != AudienceRecipients {
		t.Errorf("audience %v %v", a, ok)
	}
	payload, _ := json.Marshal(m)
	b, err := EncodeFrame(EventDialogMessageSent, payload, 9, at, Now{})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"type": "dialog.message", "id": "m1", "from": "u1", "to": "u2", "text": "hi <there>",
		"position": float64(9), "created_at": "2026-12-02T00:02:03Z"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("frame %s, want %v", b, want)
	}
	if err := ValidateDialogMessage("u1", "u1", "hi"); ErrorCode(err) != EINVALID {
		t.Errorf("a message to yourself: %v, want EINVALID", err)
	}
	for _, text := range []string{"", " \n", "a\x00", "\xff", strings.Repeat("ы", MaxPostLen+1)} {
		if err := ValidateDialogMessage("u1", "u2", text); ErrorCode(err) != EINVALID {
			t.Errorf("text %.20q: %v, want EINVALID", text, err)
		}
	}
	if err := ValidateDialogMessage("u1", "u2", strings.Repeat("ы", MaxPostLen)); err != nil {
		t.Errorf("the longest text: %v", err)
	}
}

// The kinds a socket asks for (?types=) name every relayed type: an event type and its frame's
// type have the same kind, so the socket can filter live frames by their type field and resume by
// event type alike.
func TestFrameKinds(t *testing.T) {
	if got := strings.Join(FrameKinds(), ","); got != "dialog,post" {
		t.Fatalf("kinds %s", got)
	}
	if got := strings.Join(RelayedEventTypesOf([]string{KindPost}), ","); got != "post.created,post.deleted,post.updated" {
		t.Errorf("post types %s", got)
	}
	if got := strings.Join(RelayedEventTypesOf([]string{KindDialog}), ","); got != "dialog.message_sent" {
		t.Errorf("dialog types %s", got)
	}
	samples := map[string]any{
		EventPostCreated: PostChanged{PostID: "p", AuthorUserID: "a", Text: "x"}, EventPostUpdated: PostChanged{PostID: "p", AuthorUserID: "a", Text: "x"},
		EventPostDeleted: PostChanged{PostID: "p", AuthorUserID: "a"}, EventDialogMessageSent: DialogMessageSent{MessageID: "m", From: "a", To: "b", Text: "x"},
	}
	for _, typ := range RelayedEventTypes() {
		p, ok := samples[typ]
		if !ok {
			t.Errorf("%s: no sample payload in this test", typ)
			continue
		}
		payload, _ := json.Marshal(p)
		b, err := EncodeFrame(typ, payload, 1, time.Now(), Now{Found: true, Text: "x"})
		if err != nil {
			t.Fatal(err)
		}
		var f struct{ Type string }
		_ = json.Unmarshal(b, &f)
		if FrameKind(f.Type) != FrameKind(typ) || !IsFrameKind(FrameKind(typ)) {
			t.Errorf("%s: frame type %q, kind %q", typ, f.Type, FrameKind(f.Type))
		}
	}
	if IsFrameKind("dialog.message") || IsFrameKind("") || IsFrameKind("user") {
		t.Error("not kinds")
	}
}

// BenchmarkEncodeFramePage encodes a resume page (adapters/websocket reads 100 rows per page
// through outbox.Resume.Missed) the way the relay encodes every event it publishes: decode the
// stored payload, apply what is true now, encode the frame.
func BenchmarkEncodeFramePage(b *testing.B) {
	const page = 100
	at := time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	const text = "a post of about a hundred characters, which is what most posts on a social network look like ok"
	payloads := make([][]byte, page)
	for i := range payloads {
		payloads[i], _ = json.Marshal(PostChanged{PostID: fmt.Sprintf("01937a1e-0000-7000-8000-%012d", i),
			AuthorUserID: "01937a1e-0000-7000-8000-000000000001", Text: text})
	}
	now := Now{Found: true, Text: text}
	b.ReportAllocs()
	for b.Loop() {
		for i, p := range payloads {
			if _, err := EncodeFrame(EventPostCreated, p, int64(i+1), at, now); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*page), "ns/frame")
}
