// Package http serves the REST API of design.md §2 with echo: decode, call a domain service,
// encode. Every error goes through handleError, the one place that picks a status.
package http

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/socialnet/social/adapters/auth"
	"github.com/socialnet/social/adapters/httperr"
	"github.com/socialnet/social/domain"
	"github.com/socialnet/social/internal/setting"
)

// Config holds what the API needs. All fields but Ready and Registerer are required.
type Config struct {
	Users     domain.UserService
	Friends   domain.FriendService
	Posts     domain.PostService
	Dialogs   domain.DialogService
	Tokens    *auth.Tokens
	Passwords *auth.Passwords
	Logger    *slog.Logger
	// RequestTimeout bounds each request's context, so a stalled database yields a 503 instead
	// of a hung client. Default DefaultRequestTimeout.
	RequestTimeout time.Duration
	// FeedMaxBytes bounds the body of a /post/feed, /post/list and /dialog/{user_id}/list
	// response: the page ends early, at a whole post or message, and says where the next begins
	// (feed.go, dialogs.go). Default DefaultFeedMaxBytes, at least MinFeedMaxBytes.
	FeedMaxBytes int
	// FeedMaxOffset is the largest offset /post/feed and /post/list accept; a deeper page is read
	// by cursor (cursor.go), and a larger offset is 400 saying so. Default DefaultFeedMaxOffset.
	FeedMaxOffset int
	// ExpensiveReadsPerUser bounds the expensive reads (expensive_reads.go) one user, or for
	// search one client address, has running at once; one more is 429 with Retry-After. Default
	// DefaultExpensiveReadsPerUser.
	ExpensiveReadsPerUser int
	// FollowsPerUser is how many follows (PUT /friend/set) a user makes per day: a token bucket
	// of that many, refilled evenly over the day; beyond, 429 with Retry-After. Default
	// DefaultFollowsPerUser.
	FollowsPerUser int
	// LoginFailuresPerAccount and LoginFailuresPerAddress are how many failed logins an account
	// and a client address may have per LoginFailureWindow before further attempts get 429
	// (defaults 30, 100 and a minute; login_throttle.go).
	LoginFailuresPerAccount int
	LoginFailuresPerAddress int
	LoginFailureWindow      time.Duration
	// RegistrationsPerAddress is how many registrations a client address may make per minute;
	// beyond, 429 with Retry-After before any hashing. Default 20
	// (DefaultRegistrationsPerAddress).
	RegistrationsPerAddress int
	// PostsPerUser is how many post writes (create, update, delete) a user may make per minute,
	// DialogSendsPerUser how many dialog messages a user may send; beyond, 429 with Retry-After
	// before the database. Defaults 30 and 60 (write_throttle.go).
	PostsPerUser       int
	DialogSendsPerUser int
	// TrustedProxies are the addresses whose X-Real-IP header names the client (the gateway's);
	// from any other peer the connection's address is the client's. None by default.
	TrustedProxies []netip.Prefix
	// Ready reports whether the dependencies answer; /readyz returns 503 when it fails.
	Ready func(context.Context) error
	// Registerer receives the HTTP metrics; nil means none are recorded.
	Registerer prometheus.Registerer
}

// Server is the REST API. Other adapters (websocket, web page, metrics) mount on it with Handle.
type Server struct {
	echo    *echo.Echo
	cfg     Config
	log     *slog.Logger
	metrics *httpMetrics
	logins  *loginThrottle
	// registrations counts registrations per client address (each is a bcrypt hash).
	registrations *buckets
	// follows counts follows per user.
	follows *buckets
	reads   *expensiveReads
	// posts and messages count each user's post writes and dialog sends.
	posts, messages *buckets
}

// NewServer builds the API with every route of design.md §2 registered.
func NewServer(cfg Config) *Server {
	setting.Default(&cfg.RequestTimeout, DefaultRequestTimeout)
	setting.Default(&cfg.FeedMaxBytes, DefaultFeedMaxBytes)
	cfg.FeedMaxBytes = max(cfg.FeedMaxBytes, MinFeedMaxBytes)
	setting.Default(&cfg.LoginFailuresPerAccount, DefaultLoginFailuresPerAccount)
	setting.Default(&cfg.LoginFailuresPerAddress, DefaultLoginFailuresPerAddress)
	setting.Default(&cfg.LoginFailureWindow, DefaultLoginFailureWindow)
	setting.Default(&cfg.RegistrationsPerAddress, DefaultRegistrationsPerAddress)
	setting.Default(&cfg.FeedMaxOffset, DefaultFeedMaxOffset)
	setting.Default(&cfg.ExpensiveReadsPerUser, DefaultExpensiveReadsPerUser)
	setting.Default(&cfg.FollowsPerUser, DefaultFollowsPerUser)
	setting.Default(&cfg.PostsPerUser, DefaultPostsPerUser)
	setting.Default(&cfg.DialogSendsPerUser, DefaultDialogSendsPerUser)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	s := &Server{echo: e, cfg: cfg, log: cfg.Logger, metrics: newHTTPMetrics(cfg.Registerer),
		logins:        newLoginThrottle(cfg.LoginFailuresPerAccount, cfg.LoginFailuresPerAddress, cfg.LoginFailureWindow),
		registrations: newBuckets(cfg.RegistrationsPerAddress, time.Minute),
		follows:       newBuckets(cfg.FollowsPerUser, followWindow),
		reads:         newExpensiveReads(cfg.ExpensiveReadsPerUser),
		posts:         newBuckets(cfg.PostsPerUser, time.Minute),
		messages:      newBuckets(cfg.DialogSendsPerUser, time.Minute)}
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = clientAddress(cfg.TrustedProxies)
	e.JSONSerializer = jsonSerializer{}

	e.Pre(headAsGet)
	e.Pre(requestIDs)
	e.Use(restoreHead)
	e.Use(s.observe, s.recoverPanic, s.timeout, limitBody)
	e.Use(middleware.SecureWithConfig(middleware.SecureConfig{ContentTypeNosniff: "nosniff"}))

	e.POST("/user/register", s.register)
	e.POST("/login", s.login)
	e.GET("/user/get/:id", s.getUser)
	e.GET("/user/search", s.searchUsers, s.expensive)
	e.PUT("/friend/set/:user_id", s.setFriend, s.authenticate)
	e.PUT("/friend/delete/:user_id", s.deleteFriend, s.authenticate)
	e.GET("/friend/list", s.following, s.authenticate, s.expensive)
	e.POST("/post/create", s.createPost, s.authenticate)
	e.PUT("/post/update", s.updatePost, s.authenticate)
	e.PUT("/post/delete/:id", s.deletePost, s.authenticate)
	e.GET("/post/get/:id", s.getPost)
	e.GET("/post/feed", s.feed, s.authenticate, s.expensive)
	e.GET("/post/list", s.postList, s.authenticate, s.expensive)
	e.POST("/dialog/:user_id/send", s.sendDialog, s.authenticate)
	e.GET("/dialog/:user_id/list", s.listDialog, s.authenticate, s.expensive)

	e.GET("/healthz", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"status": "ok"}) })
	e.GET("/readyz", s.ready)
	e.GET("/openapi.yaml", serveOpenAPI)
	return s
}

// headAsGet and restoreHead answer HEAD on every GET route, as net/http's ServeMux does: the
// router looks the route up as GET, then the handler runs on the HEAD request again, so the server
// sends the GET's headers and discards the body.
func headAsGet(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if r := c.Request(); r.Method == http.MethodHead {
			r.Method = http.MethodGet
			c.Set(headKey, true)
		}
		return next(c)
	}
}

func restoreHead(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if head, _ := c.Get(headKey).(bool); head {
			c.Request().Method = http.MethodHead
		}
		return next(c)
	}
}

const headKey = "head"

// Handle mounts h (a websocket endpoint, the web page, /metrics) at method and path.
func (s *Server) Handle(method, path string, h http.Handler) {
	s.echo.Add(method, path, echo.WrapHandler(h))
}

// ServeHTTP makes Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Routes lists "METHOD path" of every registered route (the OpenAPI test compares them).
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.echo.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

// clientAddress takes the client's address from X-Real-IP when the connection comes from a
// trusted proxy, and from the connection otherwise (echo's default would believe any peer's
// X-Forwarded-For, so a client could pick the address it is throttled by).
// ClientAddressKey returns the function that names a request's client for per-address bounds (the
// login throttle here, the realtime's sockets per address): the peer's address, or X-Real-IP when
// the peer is one of trusted (the gateway); IPv6 by its /64 (one subscriber's network).
func ClientAddressKey(trusted []netip.Prefix) func(*http.Request) string {
	extract := clientAddress(trusted)
	return func(r *http.Request) string { return addressKey(extract(r)) }
}

func clientAddress(trusted []netip.Prefix) echo.IPExtractor {
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, p := range trusted {
		opts = append(opts, echo.TrustIPRange(&net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}))
	}
	return echo.ExtractIPFromRealIPHeader(opts...)
}

func (s *Server) ready(c echo.Context) error {
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(c.Request().Context()); err != nil {
			// The reason names hosts, users and databases: the log has it, the client does not.
			s.log.WarnContext(c.Request().Context(), "not ready", slog.Any("err", err))
			c.Response().Header().Set("Retry-After", httperr.RetryAfter(httperr.DefaultRetryAfter))
			return c.JSON(http.StatusServiceUnavailable, map[string]string{"status": "unavailable"})
		}
	}
	return c.JSON(http.StatusOK, map[string]string{"status": "ready"})
}
