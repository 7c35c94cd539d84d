package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/socialnet/social/adapters/amqp"
	"github.com/socialnet/social/adapters/auth"
	httpapi "github.com/socialnet/social/adapters/http"
	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/adapters/websocket"
	"github.com/socialnet/social/domain"
)

// Config is every setting of every subcommand, parsed once from the environment in main and
// passed down as typed values. Nothing else reads the environment. Every field is logged once at
// start (LogValue); tag a field log:"secret" to log only whether it is set, log:"url" to hide the
// password of its URLs.
type Config struct {
	// DatabaseURL is the PostgreSQL connection string.
	DatabaseURL string `env:"DATABASE_URL" log:"url"`
	// AMQPURL lists one or more RabbitMQ addresses, comma-separated (cluster nodes); processes
	// connect to one and move to the next when it fails.
	AMQPURL string `env:"AMQP_URL" log:"url"`
	// AMQPExchange is the direct exchange the dispatcher publishes to and realtime binds to.
	AMQPExchange string `env:"AMQP_EXCHANGE"`
	// JWTSecret signs tokens (HS256, at least 32 bytes). Required by api and realtime; `all`
	// generates a random one when unset.
	JWTSecret string `env:"JWT_SECRET" log:"secret"`
	// TokenTTL is how long an issued token is valid.
	TokenTTL time.Duration `env:"TOKEN_TTL"`
	// HTTPAddr is the api's listen address (and everything's, in `all`).
	HTTPAddr string `env:"HTTP_ADDR"`
	// WSAddr is the realtime instance's listen address.
	WSAddr string `env:"WS_ADDR"`
	// DispatcherAddr is where `social dispatcher` serves /healthz, /readyz and /metrics.
	DispatcherAddr string `env:"DISPATCHER_ADDR"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `env:"LOG_LEVEL"`
	// DBMaxConns bounds the PostgreSQL pool of each process.
	DBMaxConns int32 `env:"DB_MAX_CONNS"`
	// RequestTimeout bounds every API request; a stalled database answers 503 after it.
	RequestTimeout time.Duration `env:"REQUEST_TIMEOUT"`
	// HTTPReadHeaderTimeout bounds reading a request's headers (every HTTP server of the binary).
	HTTPReadHeaderTimeout time.Duration `env:"HTTP_READ_HEADER_TIMEOUT"`
	// HTTPReadTimeout bounds reading a whole request, headers and body: a body that trickles in
	// is cut with 408 when it passes.
	HTTPReadTimeout time.Duration `env:"HTTP_READ_TIMEOUT"`
	// HTTPWriteTimeout bounds a request from the end of its headers to the last byte of its
	// response: a client that does not read its response loses the connection, and the memory the
	// response held is freed. Longer than REQUEST_TIMEOUT. Websockets are not bound by it.
	HTTPWriteTimeout time.Duration `env:"HTTP_WRITE_TIMEOUT"`
	// HTTPIdleTimeout closes a keep-alive connection that sends no request for that long.
	HTTPIdleTimeout time.Duration `env:"HTTP_IDLE_TIMEOUT"`
	// FeedPageMaxBytes bounds a /post/feed and /post/list response body: a page whose posts would pass it ends
	// early, at a whole post, with a Link to the next page. At least 65536 (the largest post).
	FeedPageMaxBytes int `env:"FEED_PAGE_MAX_BYTES"`
	// FeedMaxOffset is the largest offset GET /post/feed and /post/list accept (an offset reads
	// every post it skips); deeper pages are read with the cursor each page's Link header gives,
	// and a larger offset is 400 saying so.
	FeedMaxOffset int `env:"FEED_MAX_OFFSET"`
	// ExpensiveReadsPerUser bounds the expensive reads (feed, a user's posts, whom one follows, a
	// dialog page; search per client address) one user has running at once; one more is 429
	// with Retry-After.
	ExpensiveReadsPerUser int `env:"EXPENSIVE_READS_PER_USER"`
	// DBReadTimeout is PostgreSQL's statement_timeout for those reads: a statement that runs
	// longer is cancelled by the database and answered 503 with Retry-After.
	DBReadTimeout time.Duration `env:"DB_READ_TIMEOUT"`
	// FollowsPerUser is how many follows (PUT /friend/set) a user makes per day; beyond, 429
	// with Retry-After.
	FollowsPerUser int `env:"FOLLOWS_PER_USER"`
	// BcryptCost is the password hashing cost (4..31).
	BcryptCost int `env:"BCRYPT_COST"`
	// BcryptConcurrency bounds the passwords hashed at once (login, registration); 0 means half
	// the processors, at least one, so a flood of logins leaves the other requests their cores.
	BcryptConcurrency int `env:"BCRYPT_CONCURRENCY"`
	// LoginFailuresPerAccount and LoginFailuresPerAddress are the failed logins an account and a
	// client address may have per LoginFailureWindow; beyond, logins get 429 with Retry-After.
	LoginFailuresPerAccount int           `env:"LOGIN_FAILURES_PER_ACCOUNT"`
	LoginFailuresPerAddress int           `env:"LOGIN_FAILURES_PER_ADDRESS"`
	LoginFailureWindow      time.Duration `env:"LOGIN_FAILURE_WINDOW"`
	// RegistrationsPerAddress is how many registrations a client address may make per minute;
	// beyond, 429 with Retry-After (each is a bcrypt hash; logins are served before them).
	RegistrationsPerAddress int `env:"REGISTRATIONS_PER_ADDRESS"`
	// PostsPerUser is how many post writes (create, update, delete) one user may make per minute,
	// DialogSendsPerUser how many dialog messages one user may send (token buckets: that many at
	// once, then one every minute/N); beyond, 429 with Retry-After.
	PostsPerUser       int `env:"POSTS_PER_USER"`
	DialogSendsPerUser int `env:"DIALOG_SENDS_PER_USER"`
	// HTTPTrustedProxies lists the networks (CIDR) of proxies whose X-Real-IP header names the
	// client, for the login throttle's per-address count; "none" (the default) trusts no one, so no
	// peer can choose the address it is counted by. compose.yaml names its gateway's address.
	HTTPTrustedProxies []string `env:"HTTP_TRUSTED_PROXIES" envSeparator:","`
	// WSAllowedOrigins lists browser origins (besides the page's own) allowed to open the websocket.
	WSAllowedOrigins []string `env:"WS_ALLOWED_ORIGINS" envSeparator:","`
	// WSSendQueueBytes bounds the frame bytes queued for one websocket (realtime); a socket that
	// falls further behind is closed with 1013 and its client resumes with ?since=. In bytes, so a
	// client reading at a normal pace keeps its socket through a burst or a backlog flush.
	WSSendQueueBytes int `env:"WS_SEND_QUEUE_BYTES"`
	// WSDialogQueueBytes bounds the dialog frame bytes queued for one websocket, apart from the
	// above: past it dialog frames are dropped until those queued are written, and the client gets
	// a resync frame with kinds ["dialog"] (reload them through REST); the socket and its posts go on.
	WSDialogQueueBytes int `env:"WS_DIALOG_QUEUE_BYTES"`
	// WSResumeMaxFrames is the most frames one resume (?since=) sends; a client that missed more
	// gets a resync frame (design.md §4).
	WSResumeMaxFrames int `env:"WS_RESUME_MAX_FRAMES"`
	// WSMaxSocketsPerUser bounds one user's websockets on one realtime instance; the next
	// handshake gets 429 with Retry-After.
	WSMaxSocketsPerUser int `env:"WS_MAX_SOCKETS_PER_USER"`
	// WSHandshakesPerUser is how many websocket handshakes one user may make per minute on one
	// realtime instance (a token bucket: that many at once, then one every minute/N); the next gets
	// 429 with Retry-After before any presence write or upgrade.
	WSHandshakesPerUser int `env:"WS_HANDSHAKES_PER_USER"`
	// WSResumeWait bounds how long a handshake with ?since= waits for its user's turn (one resume
	// at a time per user on an instance); past it, 429 with Retry-After. At most half of
	// HTTP_READ_TIMEOUT is used: net/http cancels a request not upgraded by then.
	WSResumeWait time.Duration `env:"WS_RESUME_WAIT"`
	// WSMaxSockets bounds one realtime instance's websockets; the next handshake gets 503 with
	// Retry-After. 0: the process's open-file limit (raised to its hard limit at start) less 1,024
	// for everything else, so health, metrics and the database keep their descriptors.
	WSMaxSockets int `env:"WS_MAX_SOCKETS"`
	// WSMaxSocketsPerAddress bounds the websockets of one client address (X-Real-IP from
	// HTTP_TRUSTED_PROXIES, IPv6 by /64) on one instance; the next gets 429 with Retry-After.
	WSMaxSocketsPerAddress int `env:"WS_MAX_SOCKETS_PER_ADDRESS"`
	// RealtimeInstanceID is a realtime instance's id: its routing key, its queue's binding and its
	// presence rows (design.md §3). Empty: a fresh "rt-<uuid>" at every start. Each running
	// instance needs its own; a fixed one makes logs and the broker's listings stable.
	RealtimeInstanceID string `env:"REALTIME_INSTANCE_ID"`
	// RealtimeLease is how long an instance's registration lives without a renewal (renewed every
	// fifth of it): an instance killed without a goodbye is routed to for at most this long.
	RealtimeLease time.Duration `env:"REALTIME_LEASE"`
	// ShutdownTimeout bounds graceful shutdown.
	ShutdownTimeout time.Duration `env:"SHUTDOWN_TIMEOUT"`
}

// defaultConfig is every setting's default, the one place the binary states them: a package's
// Default constant where the package owns the setting, the value here where only the binary
// does. Help prints them (envDefaults) and TestREADMESettingsTable holds the README's table to them.
func defaultConfig() Config {
	return Config{
		DatabaseURL:             "postgres://postgres@127.0.0.1:5432/social?sslmode=disable",
		AMQPURL:                 "amqp://guest:guest@127.0.0.1:5672/",
		AMQPExchange:            amqp.DefaultExchange,
		TokenTTL:                24 * time.Hour,
		HTTPAddr:                ":8080",
		WSAddr:                  ":8081",
		DispatcherAddr:          ":8082",
		LogLevel:                "info",
		DBMaxConns:              16,
		RequestTimeout:          httpapi.DefaultRequestTimeout,
		HTTPReadHeaderTimeout:   5 * time.Second,
		HTTPReadTimeout:         10 * time.Second,
		HTTPWriteTimeout:        30 * time.Second,
		HTTPIdleTimeout:         2 * time.Minute,
		FeedPageMaxBytes:        httpapi.DefaultFeedMaxBytes,
		FeedMaxOffset:           httpapi.DefaultFeedMaxOffset,
		ExpensiveReadsPerUser:   httpapi.DefaultExpensiveReadsPerUser,
		DBReadTimeout:           postgres.DefaultReadTimeout,
		FollowsPerUser:          httpapi.DefaultFollowsPerUser,
		BcryptCost:              auth.DefaultBcryptCost,
		LoginFailuresPerAccount: httpapi.DefaultLoginFailuresPerAccount,
		LoginFailuresPerAddress: httpapi.DefaultLoginFailuresPerAddress,
		LoginFailureWindow:      httpapi.DefaultLoginFailureWindow,
		RegistrationsPerAddress: httpapi.DefaultRegistrationsPerAddress,
		HTTPTrustedProxies:      []string{"none"},
		PostsPerUser:            httpapi.DefaultPostsPerUser,
		DialogSendsPerUser:      httpapi.DefaultDialogSendsPerUser,
		WSSendQueueBytes:        websocket.DefaultSendQueueBytes,
		WSDialogQueueBytes:      websocket.DefaultDialogQueueBytes,
		WSHandshakesPerUser:     websocket.DefaultHandshakesPerUser,
		WSResumeWait:            websocket.DefaultResumeWait,
		WSResumeMaxFrames:       websocket.DefaultResumeMax,
		WSMaxSocketsPerUser:     websocket.DefaultMaxSocketsPerUser,
		WSMaxSocketsPerAddress:  websocket.DefaultMaxSocketsPerAddress,
		RealtimeLease:           postgres.DefaultPresenceLease,
		ShutdownTimeout:         10 * time.Second,
	}
}

// parseConfig reads the configuration from environ (the process environment in production, a map in tests).
func parseConfig(environ map[string]string) (Config, error) {
	cfg := defaultConfig() // a variable that is unset keeps its default
	if err := env.ParseWithOptions(&cfg, env.Options{Environment: environ}); err != nil {
		return cfg, fmt.Errorf("configuration: %w", err)
	}
	var errs []error
	if _, err := parseLevel(cfg.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if cfg.RealtimeLease < time.Second {
		errs = append(errs, errors.New("REALTIME_LEASE must be at least 1s"))
	}
	if cfg.WSMaxSockets < 0 || cfg.WSMaxSocketsPerAddress < 1 {
		errs = append(errs, errors.New("WS_MAX_SOCKETS must be 0 (from the open-file limit) or more, WS_MAX_SOCKETS_PER_ADDRESS at least 1"))
	}
	if cfg.WSMaxSocketsPerUser < 1 {
		errs = append(errs, errors.New("WS_MAX_SOCKETS_PER_USER must be at least 1"))
	}
	if cfg.WSHandshakesPerUser < 1 {
		errs = append(errs, errors.New("WS_HANDSHAKES_PER_USER must be at least 1"))
	}
	if cfg.WSResumeWait <= 0 {
		errs = append(errs, errors.New("WS_RESUME_WAIT must be positive"))
	}
	if cfg.FeedPageMaxBytes < httpapi.MinFeedMaxBytes {
		errs = append(errs, fmt.Errorf("FEED_PAGE_MAX_BYTES must be at least %d (the largest post)", httpapi.MinFeedMaxBytes))
	}
	if cfg.FeedMaxOffset < 1 || cfg.FeedMaxOffset > domain.MaxFeedOffset {
		errs = append(errs, fmt.Errorf("FEED_MAX_OFFSET must be between 1 and %d", domain.MaxFeedOffset))
	}
	if cfg.ExpensiveReadsPerUser < 1 || cfg.FollowsPerUser < 1 {
		errs = append(errs, errors.New("EXPENSIVE_READS_PER_USER and FOLLOWS_PER_USER must be at least 1"))
	}
	if cfg.DBReadTimeout < time.Millisecond {
		errs = append(errs, errors.New("DB_READ_TIMEOUT must be at least 1ms"))
	}
	if cfg.BcryptConcurrency < 0 {
		errs = append(errs, errors.New("BCRYPT_CONCURRENCY must be 0 (half the processors) or more"))
	}
	if cfg.PostsPerUser < 1 || cfg.DialogSendsPerUser < 1 {
		errs = append(errs, errors.New("POSTS_PER_USER and DIALOG_SENDS_PER_USER must be at least 1"))
	}
	if cfg.RegistrationsPerAddress < 1 {
		errs = append(errs, errors.New("REGISTRATIONS_PER_ADDRESS must be at least 1"))
	}
	if cfg.LoginFailuresPerAccount < 1 || cfg.LoginFailuresPerAddress < 1 || cfg.LoginFailureWindow <= 0 {
		errs = append(errs, errors.New("LOGIN_FAILURES_PER_ACCOUNT and LOGIN_FAILURES_PER_ADDRESS must be at least 1, LOGIN_FAILURE_WINDOW positive"))
	}
	if _, err := cfg.trustedProxies(); err != nil {
		errs = append(errs, err)
	}
	if cfg.DBMaxConns < 1 {
		errs = append(errs, errors.New("DB_MAX_CONNS must be at least 1"))
	}
	if cfg.RequestTimeout <= 0 || cfg.TokenTTL <= 0 || cfg.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("REQUEST_TIMEOUT, TOKEN_TTL and SHUTDOWN_TIMEOUT must be positive"))
	}
	if cfg.HTTPReadHeaderTimeout <= 0 || cfg.HTTPReadTimeout <= 0 || cfg.HTTPWriteTimeout <= 0 || cfg.HTTPIdleTimeout <= 0 {
		errs = append(errs, errors.New("HTTP_READ_HEADER_TIMEOUT, HTTP_READ_TIMEOUT, HTTP_WRITE_TIMEOUT and HTTP_IDLE_TIMEOUT must be positive"))
	}
	if cfg.HTTPReadHeaderTimeout > cfg.HTTPReadTimeout {
		errs = append(errs, errors.New("HTTP_READ_HEADER_TIMEOUT must not exceed HTTP_READ_TIMEOUT (which includes the headers)"))
	}
	if cfg.HTTPWriteTimeout <= cfg.RequestTimeout {
		errs = append(errs, errors.New("HTTP_WRITE_TIMEOUT must exceed REQUEST_TIMEOUT (it includes the handler's time)"))
	}
	return cfg, errors.Join(errs...)
}

// trustedProxies parses HTTP_TRUSTED_PROXIES.
func (c Config) trustedProxies() ([]netip.Prefix, error) {
	if len(c.HTTPTrustedProxies) == 1 && strings.TrimSpace(c.HTTPTrustedProxies[0]) == "none" {
		return nil, nil
	}
	var out []netip.Prefix
	for _, s := range c.HTTPTrustedProxies {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("HTTP_TRUSTED_PROXIES: %q is not a CIDR network (or say none)", s)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// LogValue is the configuration for the start-up log line: every setting, named as its variable
// in lower case, secrets masked.
func (c Config) LogValue() slog.Value {
	v, t := reflect.ValueOf(c), reflect.TypeOf(c)
	attrs := make([]slog.Attr, 0, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name := envName(f)
		if name == "" {
			continue
		}
		key := strings.ToLower(name)
		switch x := v.Field(i).Interface().(type) {
		case string:
			switch f.Tag.Get("log") {
			case "secret":
				x = secretText(x)
			case "url":
				x = redactURLs(x)
			}
			attrs = append(attrs, slog.String(key, x))
		case time.Duration:
			attrs = append(attrs, slog.String(key, x.String()))
		default:
			attrs = append(attrs, slog.Any(key, x))
		}
	}
	return slog.GroupValue(attrs...)
}

// secretText says whether a secret is set, and how long it is, never what it is.
func secretText(s string) string {
	if s == "" {
		return "unset"
	}
	return fmt.Sprintf("set (%d bytes)", len(s))
}

// redactURL hides the password of a connection URL: in its user info, in a password query
// parameter, or in a PostgreSQL keyword/value string ("host=h password=p").
func redactURL(s string) string {
	if !strings.Contains(s, "://") {
		return dsnPassword.ReplaceAllString(s, "${1}xxxxx")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparseable)"
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

var dsnPassword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)`)

func redactURLs(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = redactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}
