// Package websocket serves the realtime feed of design.md §4: authenticated, push-only websockets
// fed by an in-process hub, which the RabbitMQ consumer fills. The hub never blocks the consumer:
// each socket has a bounded send queue, and a socket that falls behind is closed.
package websocket

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/socialnet/social/adapters/auth"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/internal/setting"
)

// Presence records which users hold a socket on this instance, where the dispatcher routes from
// (adapters/postgres.Presence). The hub calls Join for every socket and Leave when it closes; the
// presence counts them per user. Join must return nil only once events relayed from then on are
// routed to this instance (the user's presence is committed), and fail while it cannot promise
// that (no database): the hub reads a resume and upgrades only after Join, so a socket is never
// open while its frames are routed nowhere. After an error it holds no count.
type Presence interface {
	Join(ctx context.Context, userID string) error
	Leave(userID string)
}

// DefaultSendQueueBytes is Config.SendQueueBytes when unset: 4 MiB, e.g. about 15,000 frames of
// a typical post (under 300 bytes), or 100 of the longest (10,000 characters).
const DefaultSendQueueBytes = 4 << 20

// DefaultDialogQueueBytes is Config.DialogQueueBytes when unset: 1 MiB, about 3,500 messages of a
// typical length or 17 of the longest (10,000 characters escaped). Unlike a post's, a message's
// frame is shared by its two users only, so these bytes are what a socket really holds.
const DefaultDialogQueueBytes = 1 << 20

// DefaultMaxSocketsPerUser is Config.MaxSocketsPerUser when unset.
const DefaultMaxSocketsPerUser = 16

// Config configures a Hub. Tokens and Presence are required.
type Config struct {
	// Tokens verifies the bearer token before the upgrade.
	Tokens *auth.Tokens
	// Presence records the users connected here (routing reads it).
	Presence Presence
	// Missed reads the frames a resuming client missed (?since=N): outbox.NewResume. Nil
	// refuses ?since= with 400.
	Missed MissedFrames
	// AllowedOrigins lists browser origins ("https://app.example.com") allowed besides the
	// request's own host. A request without Origin (not a browser) is allowed.
	AllowedOrigins []string
	// Logger; nil discards. Tokens never reach it (?token= is redacted).
	Logger *slog.Logger
	// Registerer receives the social_ws_* metrics; nil records none.
	Registerer prometheus.Registerer
	// SendQueueBytes bounds the frame bytes other than dialog frames (DialogQueueBytes) waiting
	// for one socket (live frames, also those buffered while a resume reads PostgreSQL); a frame
	// that would take them past it, some being queued, closes the socket with 1013 ("too slow:
	// reconnect with since"). Default 4 MiB (DefaultSendQueueBytes).
	//
	// Bytes, not frames (design.md §4): a client reading at a normal pace must keep its socket
	// through a burst or a backlog flush after an outage, when the relay hands the instance
	// frames far faster than any one socket drains. A bound of 256 frames closed such readers
	// (issue #11: 1,000 small frames of a flush after a dispatcher outage), while 256 frames of
	// 40 KB posts would be 10 MB. A frame's bytes are shared by every socket it goes to (encoded
	// once), so a burst to many sockets costs one copy plus a pointer per socket; the bound is
	// what one socket that falls behind on frames nobody else shares can hold. The queue is
	// allocated only while frames wait, so an idle socket costs nothing for it.
	SendQueueBytes int
	// DialogQueueBytes bounds the dialog frame bytes waiting for one socket, apart from
	// SendQueueBytes: a dialog frame that would take them past it is dropped, dialog frames are
	// dropped until those queued are written, and the client is sent a resync with kinds ["dialog"]
	// (shed.go); the socket and its post frames go on. Default 1 MiB (DefaultDialogQueueBytes).
	DialogQueueBytes int
	// PingInterval is the keepalive period; PingTimeout bounds the wait for the pong. Defaults 30s, 10s.
	PingInterval, PingTimeout time.Duration
	// WriteTimeout bounds one frame write; a peer that does not drain its socket for that long is
	// dropped. Default 10s.
	WriteTimeout time.Duration
	// ResumePage is how many missed frames are read from PostgreSQL per query. Default 100.
	ResumePage int
	// ResumePageBytes bounds one page's frames in bytes (at least one frame is read): a resume
	// holds one page per socket whatever the posts weigh. Default 1 MiB.
	ResumePageBytes int
	// ResumeMax is the most frames one resume sends (design.md §4). A client that missed more is
	// sent {"type":"resync","position":P} and the socket is closed: it reloads through REST and
	// reconnects with since=P. Default 1,000 (DefaultResumeMax).
	ResumeMax int
	// HandshakesPerUser is how many handshakes one user may make per minute on this instance (a
	// token bucket: that many at once, then one every minute/HandshakesPerUser); the next is
	// answered 429 with Retry-After, before any presence write or upgrade. Default 60
	// (DefaultHandshakesPerUser).
	HandshakesPerUser int
	// ResumeWait bounds how long a handshake with ?since= waits for its user's turn: one resume at a
	// time per user on this instance (design.md §4); past it the handshake is answered 429 with
	// Retry-After, before the upgrade. Refills wait as long, then close the socket with 1013.
	// Default 5 s (DefaultResumeWait): below the HTTP read timeout, past which net/http cancels a
	// request that has not been upgraded yet.
	ResumeWait time.Duration
	// MaxSocketsPerUser bounds one user's sockets on this instance (tabs, devices); the next
	// handshake is answered 429 with Retry-After, before any presence write or upgrade. Default 16
	// (DefaultMaxSocketsPerUser). One token could otherwise hold thousands of sockets (issue #12).
	MaxSocketsPerUser int
	// MaxSockets bounds this instance's sockets in all; the next handshake is answered 503 with
	// Retry-After (a load balancer moves on), well before the process runs out of descriptors, so
	// its health and metrics still answer. 0: no bound (cmd/social derives one from the
	// descriptor limit).
	MaxSockets int
	// MaxSocketsPerAddress bounds the sockets of one client address (ClientAddress); the next
	// handshake is 429 with Retry-After. Default 1,000 (DefaultMaxSocketsPerAddress).
	MaxSocketsPerAddress int
	// ClientAddress names a request's client for MaxSocketsPerAddress; default the peer's host.
	ClientAddress func(*http.Request) string
	// Writers is how many goroutines write frames for all sockets (writers.go). Default GOMAXPROCS.
	Writers int
	// Refills is how many sockets fill their gap from PostgreSQL at once after Refill (a broker
	// reconnect, a lost registration). Default 8: enough to keep the database busy, few enough
	// that the instance's pool still serves new sockets' resumes.
	Refills int
}

// DefaultMaxSocketsPerAddress is Config.MaxSocketsPerAddress when unset: an office behind one NAT
// address keeps a thousand tabs; one attacker's address does not take the instance.
const DefaultMaxSocketsPerAddress = 1000

// DefaultResumeMax is the most frames one resume sends by default.
const DefaultResumeMax = 1000

// DefaultHandshakesPerUser is Config.HandshakesPerUser when unset: a user's 16 tabs reconnect
// three times over at once after a restart; a client reconnecting in a loop gets one socket a
// second.
const DefaultHandshakesPerUser = 60

// DefaultResumeWait is Config.ResumeWait when unset.
const DefaultResumeWait = 5 * time.Second

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	setting.Default(&c.SendQueueBytes, DefaultSendQueueBytes)
	setting.Default(&c.DialogQueueBytes, DefaultDialogQueueBytes)
	setting.Default(&c.PingInterval, 30*time.Second)
	setting.Default(&c.PingTimeout, 10*time.Second)
	setting.Default(&c.WriteTimeout, 10*time.Second)
	setting.Default(&c.ResumeMax, DefaultResumeMax)
	setting.Default(&c.ResumePage, 100)
	c.ResumePage = min(c.ResumePage, c.ResumeMax)
	setting.Default(&c.ResumePageBytes, 1<<20)
	setting.Default(&c.MaxSocketsPerUser, DefaultMaxSocketsPerUser)
	setting.Default(&c.HandshakesPerUser, DefaultHandshakesPerUser)
	setting.Default(&c.ResumeWait, DefaultResumeWait)
	setting.Default(&c.Refills, 8)
	setting.Default(&c.MaxSocketsPerAddress, DefaultMaxSocketsPerAddress)
	if c.ClientAddress == nil {
		c.ClientAddress = peerHost
	}
}

// resumePages is the most pages one resume reads: ten times the pages its frames need when every
// page is full. A page reads a bounded stretch of the outbox (outbox.Resume), which may hold few of
// the user's frames; a resume that has read this many without reaching the newest position ends
// with a resync, like one that sent ResumeMax frames.
func (c *Config) resumePages() int {
	return 10 * ((c.ResumeMax + c.ResumePage - 1) / c.ResumePage)
}

// peerHost is the host of the request's peer.
func peerHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Validate reports missing required fields.
func (c *Config) Validate() error {
	var errs []error
	if c.Tokens == nil {
		errs = append(errs, errors.New("websocket: Tokens is required"))
	}
	if c.Presence == nil {
		errs = append(errs, errors.New("websocket: Presence is required"))
	}
	return errors.Join(errs...)
}

// Hub maps users to their local sockets and serves /post/feed/posted (ServeHTTP).
type Hub struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics

	mu        sync.RWMutex
	users     map[string][]*conn // a user's sockets (usually one: a slice is smaller than a set)
	sockets   int                // in users
	byAddress map[string]int     // sockets per client address

	writers writers // the goroutines that write frames, shared by every socket

	closing   chan struct{}
	closeOnce sync.Once
	active    sync.WaitGroup // one per admitted socket, until it is closed

	// live is the highest position this instance has all frames up to: received from the broker
	// (one publisher, in position order) or read by a broker reconnect's gap fill. The next gap
	// starts there (refill.go); a gap that started lower would send the last one's frames again.
	live atomic.Int64
	// floorAt is where a socket opened without ?since= fills a later gap from (refill.go: floor),
	// read at floorRead (unix nanoseconds).
	floorAt, floorRead atomic.Int64
	// refills are the sockets waiting to fill a gap, taken by up to Config.Refills goroutines.
	refills refillQueue
	// turns runs one resume at a time per user; handshakes throttles each user's handshakes.
	turns      turns
	handshakes *handshakeThrottle
}

// NewHub returns a Hub.
func NewHub(cfg Config) (*Hub, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Hub{cfg: cfg, log: cfg.Logger, metrics: newMetrics(cfg.Registerer),
		users: make(map[string][]*conn), byAddress: make(map[string]int), closing: make(chan struct{}), writers: writers{max: cfg.Writers},
		handshakes: newHandshakeThrottle(cfg.HandshakesPerUser)}, nil
}

// The bounds register refuses a socket by (serve.go answers each).
var (
	// errTooManySockets: the user already holds Config.MaxSocketsPerUser sockets here.
	errTooManySockets = errors.New("too many sockets for this user")
	// errTooManyFromAddress: the client address holds Config.MaxSocketsPerAddress.
	errTooManyFromAddress = errors.New("too many sockets from this address")
	// errInstanceFull: the instance holds Config.MaxSockets.
	errInstanceFull = errors.New("this instance holds the most sockets it takes")
)

// register adds c to the hub, then waits for the user's presence: from its return on, every frame
// relayed to the user reaches c's queue (c is listed before the presence commits, so none is
// missed).
// A user at Config.MaxSocketsPerUser gets errTooManySockets (counted and added in one step, so
// concurrent handshakes cannot pass the bound together).
func (h *Hub) register(ctx context.Context, c *conn) error {
	h.mu.Lock()
	switch {
	case h.cfg.MaxSockets > 0 && h.sockets >= h.cfg.MaxSockets:
		h.mu.Unlock()
		return errInstanceFull
	case h.byAddress[c.addr] >= h.cfg.MaxSocketsPerAddress:
		h.mu.Unlock()
		return errTooManyFromAddress
	case len(h.users[c.user]) >= h.cfg.MaxSocketsPerUser:
		h.mu.Unlock()
		return errTooManySockets
	}
	h.users[c.user] = append(h.users[c.user], c)
	h.sockets++
	h.byAddress[c.addr]++
	h.mu.Unlock()
	if err := h.cfg.Presence.Join(ctx, c.user); err != nil {
		h.remove(c)
		return err
	}
	return nil
}

func (h *Hub) remove(c *conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.users[c.user]
	for i, x := range set {
		if x == c {
			set[i] = set[len(set)-1]
			set[len(set)-1] = nil
			set = set[:len(set)-1]
			break
		}
	}
	if len(set) == 0 {
		delete(h.users, c.user)
	} else {
		h.users[c.user] = set
	}
	h.sockets--
	if h.byAddress[c.addr]--; h.byAddress[c.addr] <= 0 {
		delete(h.byAddress, c.addr)
	}
}

// unregister removes c and drops its count in the user's presence (removed after the last socket).
func (h *Hub) unregister(c *conn) {
	h.remove(c)
	h.cfg.Presence.Leave(c.user)
}

// Deliver hands one frame received from the broker (the dispatcher's bytes, unchanged) to the
// local sockets of recipients that asked for its kind (?types=). It never blocks: a socket whose
// send queue is full is closed instead (1013). Its signature is domain.EachDelivery's callback.
func (h *Hub) Deliver(body []byte, recipients domain.Recipients) {
	f, err := parseFrame(body)
	if err != nil {
		h.log.Warn("dropping undecodable frame", slog.Any("err", err))
		return
	}
	h.reached(f.position)
	h.deliver(f, recipients)
}

// reached records that every frame routed here up to pos has arrived (live, or by a gap fill).
func (h *Hub) reached(pos int64) {
	for {
		seen := h.live.Load()
		if pos <= seen || h.live.CompareAndSwap(seen, pos) {
			return
		}
	}
}

// fewRecipients is the most recipients a frame may have for its sockets to be written ahead of
// those already waiting (writers.add with first): a user's post to a few online followers, a dialog
// message, is not held up by a celebrity's post that queued thousands of sockets just before.
const fewRecipients = 64

// deliver hands f to the local sockets of recipients.
func (h *Hub) deliver(f *frame, recipients domain.Recipients) {
	f.live = true
	first := recipients.Len() <= fewRecipients
	// Sockets that were idle go to the writers in groups (one lock of the run queue each), the
	// first socket at once: its write starts while the rest are still being queued.
	var ready [64]*conn
	n, group := 0, 1
	h.mu.RLock()
	for r := range recipients.All() {
		for _, c := range h.users[string(r)] { // no copy: the conversion only serves the lookup
			if !c.accepts(f) || !c.enqueueFrame(f) {
				continue
			}
			ready[n] = c
			if n++; n == group {
				h.writers.add(first, ready[:n])
				n, group = 0, len(ready)
			}
		}
	}
	h.mu.RUnlock()
	h.writers.add(first, ready[:n])
}

// acquire admits a new socket unless the hub is shutting down.
func (h *Hub) acquire() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.closing:
		return false
	default:
	}
	h.active.Add(1)
	return true
}

// Connections returns the number of local sockets.
func (h *Hub) Connections() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.sockets
}

// Shutdown closes every socket with 1001 (going away) so clients reconnect elsewhere, refuses new
// ones, and waits for the sockets to finish or ctx to end.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.closeOnce.Do(func() {
		h.mu.Lock() // see acquire: no socket is admitted after this
		close(h.closing)
		// A socket admitted before but registered after this sees closing in ServeHTTP.
		for _, set := range h.users {
			for _, c := range set {
				c.kick(websocket.StatusGoingAway, "server shutting down")
			}
		}
		h.mu.Unlock()
	})
	done := make(chan struct{})
	go func() { h.active.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
