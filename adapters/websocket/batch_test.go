package websocket_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/auth"
	ws "github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/domain"
)

// rawMessages reads n websocket messages as they come.
func rawMessages(t *testing.T, c *websocket.Conn, n int) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out [][]byte
	for range n {
		_, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(out), err)
		}
		out = append(out, b)
	}
	return out
}

// ?batch=lines packs the frames of a round (here: each resume page, then live frames) into as few
// websocket messages as 64 KiB allows, one JSON frame per line, in position order; a socket that
// does not ask gets one frame per message, as the OTUS channel says.
func TestBatchLinesPacksFramesOnePerLine(t *testing.T) {
	t.Parallel()
	const total, page, maxMessage = 150, 100, 64 << 10
	missed := fakeMissedWith(total, strings.Repeat("x", 1000)) // 100 frames of ~1.1 KB: a page needs two messages
	tokens, err := auth.NewTokens(strings.Repeat("s", 32), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := ws.NewHub(ws.Config{Tokens: tokens, Presence: fakePresence{}, Missed: missed, ResumePage: page})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, tokens: tokens, srv: httptest.NewServer(hub)}
	t.Cleanup(e.srv.Close)
	dial := func(user, query string) *websocket.Conn {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, _, err := websocket.Dial(ctx, e.wsURL(query), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + e.token(t, user)}}})
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadLimit(1 << 20)
		t.Cleanup(func() { c.CloseNow() })
		return c
	}

	batched := dial(uuid.NewString(), "batch=lines&since=0")
	// Page 1 (100 frames, ~110 KB) in two messages, page 2 (50 frames) in one.
	msgs := rawMessages(t, batched, 3)
	want := int64(1)
	for i, m := range msgs {
		if frames := len(m) - bytes.Count(m, []byte("\n")); frames > maxMessage {
			t.Errorf("message %d holds %d bytes of frames, more than %d", i, frames, maxMessage)
		}
		if bytes.HasSuffix(m, []byte("\n")) {
			t.Errorf("message %d ends with a newline", i)
		}
		for line := range bytes.SplitSeq(m, []byte("\n")) {
			var f domain.FeedFrame
			if err := json.Unmarshal(line, &f); err != nil {
				t.Fatalf("message %d: a line is not a frame: %v", i, err)
			}
			if f.Position != want {
				t.Fatalf("message %d: frame at %d, want %d", i, f.Position, want)
			}
			want++
		}
	}
	if want != total+1 {
		t.Fatalf("3 messages carried %d frames, want %d", want-1, total)
	}

	// Without ?batch=, the same resume is one frame per message.
	plain := dial(uuid.NewString(), "since=0")
	for i, m := range rawMessages(t, plain, total) {
		var f domain.FeedFrame
		if err := json.Unmarshal(m, &f); err != nil || f.Position != int64(i+1) {
			t.Fatalf("message %d is not the single frame at %d (%v): %.80q", i, i+1, err, m)
		}
	}
}

func TestBatchRefusesAnUnknownFormat(t *testing.T) {
	t.Parallel()
	tokens, err := auth.NewTokens(strings.Repeat("s", 32), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := ws.NewHub(ws.Config{Tokens: tokens, Presence: fakePresence{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hub)
	t.Cleanup(srv.Close)
	for _, q := range []string{"batch=", "batch=json", "batch=lines&batch=lines"} {
		tok, _ := tokens.Issue(uuid.NewString())
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/post/feed/posted?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Message string `json:"message"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body.Message, "lines") {
			t.Errorf("?%s: %d %q, want 400 naming the format", q, resp.StatusCode, body.Message)
		}
	}
}
