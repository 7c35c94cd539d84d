package websocket_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	ws "github.com/socialnet/social/adapters/websocket"
)

// TestSeventeenthSocketOfAUserGets429 (issue #12): one user holds at most
// Config.MaxSocketsPerUser (default 16) sockets on an instance. The next handshake is answered
// 429 with Retry-After and the API's JSON error, before any upgrade; another user is not
// affected; once one of the 16 closes, the user connects again.
func TestSeventeenthSocketOfAUserGets429(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	user := uuid.NewString()
	socks := make([]*client, ws.DefaultMaxSocketsPerUser)
	for i := range socks {
		socks[i] = e.dial(t, user, "")
	}
	dial := func(user string) (*websocket.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return websocket.Dial(ctx, e.wsURL(""), &websocket.DialOptions{
			HTTPHeader: http.Header{"Authorization": {"Bearer " + e.token(t, user)}}})
	}
	c, resp, err := dial(user)
	if err == nil {
		c.CloseNow()
		t.Fatal("the 17th socket of one user was accepted")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("17th socket: %v (response %+v), want 429", err, resp)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	var body struct {
		Message string `json:"message"`
		Code    int    `json:"code"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Code != 429 || body.Message == "" {
		t.Fatalf("error body %+v, %v", body, err)
	}
	if got := e.metric("social_ws_too_many_sockets_total"); got != 1 {
		t.Fatalf("refusals counted %v, want 1", got)
	}
	// Another user connects normally, and the 16 sockets still receive frames.
	other := e.dial(t, uuid.NewString(), "")
	_ = other
	e.publish(t, frameAt(1, uuid.NewString()), user)
	for _, s := range socks {
		if f := s.next(15 * time.Second); f.Position != 1 {
			t.Fatalf("frame %+v", f)
		}
	}
	// One closes: a new one is admitted.
	socks[0].c.Close(websocket.StatusNormalClosure, "")
	waitFor(t, 15*time.Second, "the closed socket to leave the hub", func() bool {
		return e.hub.Connections() == ws.DefaultMaxSocketsPerUser // 15 of user + other
	})
	c, _, err = dial(user)
	if err != nil {
		t.Fatalf("a 16th socket after one closed: %v", err)
	}
	c.CloseNow()
}

// TestMaxSocketsPerUserIsConfigurable: the bound is Config.MaxSocketsPerUser.
func TestMaxSocketsPerUserIsConfigurable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(c *ws.Config) { c.MaxSocketsPerUser = 2 })
	user := uuid.NewString()
	e.dial(t, user, "")
	e.dial(t, user, "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, e.wsURL(""), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + e.token(t, user)}}})
	if err == nil {
		c.CloseNow()
		t.Fatal("a third socket was accepted with MaxSocketsPerUser 2")
	}
	if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third socket: %v, want 429", err)
	}
}
