package websocket

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// handshakeThrottle counts one user's handshakes with a token bucket (golang.org/x/time/rate):
// perMinute at once, then one every minute/perMinute. A handshake costs a presence write and,
// with ?since=, a resume from PostgreSQL: a client reconnecting its sockets in a loop made the
// database read the same resume pages over and over (issue #24). Past the bound the handshake is
// answered 429 with the wait in Retry-After, before any presence write or upgrade.
type handshakeThrottle struct {
	users *lru.Cache[string, *rate.Limiter]
	every rate.Limit
	burst int
}

// throttledUsers bounds the table (about 200 bytes an entry): the least recently connecting user
// goes first, and only a user with a valid token enters it.
const throttledUsers = 100_000

func newHandshakeThrottle(perMinute int) *handshakeThrottle {
	c, err := lru.New[string, *rate.Limiter](throttledUsers)
	if err != nil {
		panic(err) // only for a size ≤ 0
	}
	return &handshakeThrottle{users: c, every: rate.Limit(float64(perMinute) / 60), burst: perMinute}
}

// take counts one handshake of user and returns 0, or, when the user has none left, how long until
// the next one (counting nothing).
func (t *handshakeThrottle) take(user string, now time.Time) time.Duration {
	lim, ok := t.users.Get(user)
	if !ok {
		lim = rate.NewLimiter(t.every, t.burst)
		if prev, found, _ := t.users.PeekOrAdd(user, lim); found {
			lim = prev
		}
	}
	if lim.AllowN(now, 1) { // takes the token only if there is one: a refusal costs nothing
		return 0
	}
	return max(time.Duration((1-lim.TokensAt(now))/float64(t.every)*float64(time.Second)), time.Millisecond)
}
