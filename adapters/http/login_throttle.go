package http

import (
	"net/netip"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/socialnet/social/domain"
)

// Defaults of the login throttle (design.md §2: failed logins are throttled per account and per
// client address).
const (
	DefaultLoginFailuresPerAccount = 30
	DefaultLoginFailuresPerAddress = 100
	DefaultLoginFailureWindow      = time.Minute
	// DefaultRegistrationsPerAddress is how many registrations one address makes per minute: a
	// family or a classroom behind one address signs up; a flood of bcrypt hashes does not.
	DefaultRegistrationsPerAddress = 20
	// DefaultFollowsPerUser is how many follows a user makes a day (Twitter's limit): a newcomer
	// follows dozens at once, a script building a graph of 100,000 follows (468 a second were
	// measured, each making that user's feed reads costlier) takes months.
	DefaultFollowsPerUser = 400
	followWindow          = 24 * time.Hour
	// loginThrottleKeys bounds each of the two tables (about 200 bytes an entry): a client with
	// many addresses cannot grow them without bound. The least recently failing key goes first;
	// accounts enter only after a wrong password, each paid with a bcrypt hash, so flushing a
	// victim's entry out of 50,000 would take an attacker the better part of an hour of hashing.
	loginThrottleKeys = 50_000
)

// loginThrottle counts failed logins with one token bucket (golang.org/x/time/rate) per account
// and per client address: `failures` tokens that refill over `window`. An attempt is refused (429,
// before any hashing) while a bucket it would count against is empty; only a failure takes a
// token, so any number of correct logins from one address (an office behind NAT) succeed.
// Concurrent wrong guesses may all pass the check before the first is counted; each still takes
// its token when it fails (the bucket goes into debt, so the next attempts wait longer), and
// bcrypt's bounded concurrency bounds how many can be in flight.
type loginThrottle struct {
	accounts, addresses *buckets
}

func newLoginThrottle(perAccount, perAddress int, window time.Duration) *loginThrottle {
	return &loginThrottle{accounts: newBuckets(perAccount, window), addresses: newBuckets(perAddress, window)}
}

type buckets struct {
	byKey *lru.Cache[string, *rate.Limiter]
	every rate.Limit
	burst int
}

func newBuckets(failures int, window time.Duration) *buckets {
	c, err := lru.New[string, *rate.Limiter](loginThrottleKeys)
	if err != nil {
		panic(err) // only for a size ≤ 0
	}
	return &buckets{byKey: c, every: rate.Limit(float64(failures) / window.Seconds()), burst: failures}
}

// wait is how long key must wait before its next attempt: 0 while its bucket has a token.
func (b *buckets) wait(key string, now time.Time) time.Duration {
	lim, ok := b.byKey.Get(key)
	if !ok {
		return 0
	}
	tokens := lim.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) / float64(b.every) * float64(time.Second))
}

// fail counts one failure for key (a bucket for it is made on its first failure, so only failing
// keys enter the table).
func (b *buckets) fail(key string, now time.Time) {
	lim, ok := b.byKey.Get(key)
	if !ok {
		lim = rate.NewLimiter(b.every, b.burst)
		if prev, found, _ := b.byKey.PeekOrAdd(key, lim); found {
			lim = prev
		}
	}
	lim.ReserveN(now, 1) // never cancelled: a failure past the bound is debt
}

// take counts one attempt for key and returns 0, or, when none is left, the wait until one is
// (counting nothing).
func (b *buckets) take(key string, now time.Time) time.Duration {
	if wait := b.wait(key, now); wait > 0 {
		return wait
	}
	b.fail(key, now)
	return 0
}

// throttledError is a 429 with the Retry-After the client should honour.
type throttledError struct {
	err   *domain.Error
	after time.Duration
}

func (e *throttledError) Error() string { return e.err.Error() }
func (e *throttledError) Unwrap() error { return e.err }

func throttled(wait time.Duration, what string) error {
	return &throttledError{err: domain.Errorf(domain.ETHROTTLED, "too many %s: retry later", what), after: wait}
}

// addressKey is the throttle's key for a client address: IPv4 as is, IPv6 by its /64 (one
// subscriber's network; a single host can use every address in it).
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
