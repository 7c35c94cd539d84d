package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/socialnet/social/adapters/auth"
	httpapi "github.com/socialnet/social/adapters/http"
	"github.com/socialnet/social/adapters/postgres"
	"github.com/socialnet/social/web"
)

// runAPI serves the REST API, the web page and /metrics on HTTP_ADDR.
func (a *app) runAPI(ctx context.Context) error {
	tokens, err := a.tokens(false)
	if err != nil {
		return err
	}
	pool, err := a.openPool(ctx, true)
	if err != nil {
		return err
	}
	defer pool.Close()
	reg := newRegistry()
	srv, err := a.newAPIServer(pool, tokens, reg, pingDB(pool))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	return runTogether(ctx, cancel,
		func(ctx context.Context) error { return a.serve(ctx, "api", a.cfg.HTTPAddr, srv) },
		a.purgeIdempotencyKeys(pool))
}

// purgeIdempotencyKeys deletes expired Idempotency-Keys at start and then every hour, until ctx
// ends; a failed purge is logged and tried again at the next hour (an expired key is taken over
// by its next use anyway: the purge only keeps the table from growing).
func (a *app) purgeIdempotencyKeys(pool *pgxpool.Pool) func(context.Context) error {
	keys := postgres.NewIdempotencyKeys(pool)
	return func(ctx context.Context) error {
		tick := time.NewTicker(time.Hour)
		defer tick.Stop()
		for {
			n, err := keys.Purge(ctx, time.Now())
			switch {
			case ctx.Err() != nil:
				return nil
			case err != nil:
				a.log.Warn("purge idempotency keys", slog.Any("err", err))
			case n > 0:
				a.log.Info("purged idempotency keys", slog.Int64("count", n))
			}
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
	}
}

// runMigrate applies the embedded migrations.
func (a *app) runMigrate(ctx context.Context) error {
	created, err := postgres.EnsureDatabase(ctx, a.cfg.DatabaseURL)
	if err != nil {
		return err
	}
	if created {
		a.log.Info("created database", slog.String("database_url", redactURL(a.cfg.DatabaseURL)))
	}
	pool, err := a.openPool(ctx, false)
	if err != nil {
		return err
	}
	defer pool.Close()
	applied, err := postgres.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	a.log.Info("migrations applied", slog.Any("applied", applied), slog.Int("count", len(applied)))
	return nil
}

// tokens builds the JWT issuer/verifier. JWT_SECRET is required unless generate is set (`all`),
// in which case a random secret is made and every restart invalidates the old tokens.
func (a *app) tokens(generate bool) (*auth.Tokens, error) {
	if a.cfg.JWTSecret == "" {
		if !generate {
			return nil, errors.New("JWT_SECRET is required (at least 32 bytes), e.g. JWT_SECRET=$(openssl rand -hex 32)")
		}
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		a.cfg.JWTSecret = hex.EncodeToString(b)
		a.log.Warn("JWT_SECRET is not set: using a random secret; tokens will not survive a restart")
	}
	if why := weakSecret(a.cfg.JWTSecret); why != "" {
		return nil, fmt.Errorf("JWT_SECRET is %s: anyone who can guess it can sign tokens for every user; use 32+ random bytes, e.g. JWT_SECRET=$(openssl rand -hex 32)", why)
	}
	t, err := auth.NewTokens(a.cfg.JWTSecret, a.cfg.TokenTTL)
	if err != nil {
		return nil, fmt.Errorf("JWT_SECRET: %w", err)
	}
	return t, nil
}

// weakSecret says why a JWT secret must not be used ("" when it may): a placeholder copied from
// an example (compose.yaml once shipped one), or too few distinct bytes to be random.
func weakSecret(s string) string {
	lower := strings.ToLower(s)
	for _, placeholder := range []string{"change-me", "changeme", "change_me", "replace-me", "your-secret"} {
		if strings.Contains(lower, placeholder) {
			return "a placeholder (" + placeholder + ")"
		}
	}
	distinct := map[rune]bool{}
	for _, r := range s {
		distinct[r] = true
	}
	if len(s) > 0 && len(distinct) < 8 {
		return fmt.Sprintf("not random (%d distinct characters)", len(distinct))
	}
	return ""
}

// openPool connects to PostgreSQL; with checkSchema it refuses an outdated schema.
func (a *app) openPool(ctx context.Context, checkSchema bool) (*pgxpool.Pool, error) {
	pool, err := postgres.Open(ctx, a.cfg.DatabaseURL, postgres.PoolConfig{MaxConns: a.cfg.DBMaxConns, ConnectTimeout: 2 * time.Second})
	if err != nil {
		return nil, err
	}
	if checkSchema {
		if err := postgres.CheckSchema(ctx, pool); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return pool, nil
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func pingDB(pool *pgxpool.Pool) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := pool.Ping(ctx); err != nil {
			return fmt.Errorf("database: %w", err)
		}
		return nil
	}
}

// newAPIServer wires the REST API with the postgres services, the web page and /metrics.
func (a *app) newAPIServer(pool *pgxpool.Pool, tokens *auth.Tokens, reg *prometheus.Registry, ready ...func(context.Context) error) (*httpapi.Server, error) {
	passwords, err := auth.NewPasswords(a.cfg.BcryptCost, a.cfg.BcryptConcurrency)
	if err != nil {
		return nil, fmt.Errorf("BCRYPT_COST, BCRYPT_CONCURRENCY: %w", err)
	}
	proxies, _ := a.cfg.trustedProxies() // validated by parseConfig
	reads := postgres.ReadTimeout(a.cfg.DBReadTimeout)
	srv := httpapi.NewServer(httpapi.Config{
		Users:          postgres.NewUserService(pool, reads),
		Friends:        postgres.NewFriendService(pool, reads),
		Posts:          postgres.NewPostService(pool, reads),
		Dialogs:        postgres.NewDialogService(pool, reads),
		Tokens:         tokens,
		Passwords:      passwords,
		Logger:         a.log,
		RequestTimeout: a.cfg.RequestTimeout,
		FeedMaxBytes:   a.cfg.FeedPageMaxBytes,
		FeedMaxOffset:  a.cfg.FeedMaxOffset,

		ExpensiveReadsPerUser: a.cfg.ExpensiveReadsPerUser,
		FollowsPerUser:        a.cfg.FollowsPerUser,

		LoginFailuresPerAccount: a.cfg.LoginFailuresPerAccount,
		LoginFailuresPerAddress: a.cfg.LoginFailuresPerAddress,
		RegistrationsPerAddress: a.cfg.RegistrationsPerAddress,
		PostsPerUser:            a.cfg.PostsPerUser,
		DialogSendsPerUser:      a.cfg.DialogSendsPerUser,
		LoginFailureWindow:      a.cfg.LoginFailureWindow,
		TrustedProxies:          proxies,
		Registerer:              reg,
		Ready: func(ctx context.Context) error {
			var errs []error
			for _, r := range ready {
				if r != nil {
					errs = append(errs, r(ctx))
				}
			}
			return errors.Join(errs...)
		},
	})
	srv.Handle(http.MethodGet, "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv.Handle(http.MethodGet, "/", web.Handler())
	srv.Handle(http.MethodGet, "/static/*", web.Handler())
	return srv, nil
}
