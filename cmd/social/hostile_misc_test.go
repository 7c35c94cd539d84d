package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestHostileOpsReadyzNamesNoInternals: the dispatcher's and realtime's /readyz printed their
// checks' errors, which name hosts, users and databases; they go to the log only.
func TestHostileOpsReadyzNamesNoInternals(t *testing.T) {
	t.Parallel()
	a, _ := newTestApp(t)
	a.log = slog.New(slog.DiscardHandler)
	mux := a.opsMux(prometheus.NewRegistry(), func(context.Context) error {
		return errors.New("database: failed to connect to `user=secretuser database=secretdb`: 10.1.2.3:5432")
	})
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("readyz: %d", rec.Code)
	}
	for _, secret := range []string{"secretuser", "secretdb", "10.1.2.3", "5432"} {
		if strings.Contains(string(body), secret) {
			t.Errorf("readyz says %q: %s", secret, body)
		}
	}
}

// TestHostileGatewayLogsNoQueryString: nginx logged full request URIs, ?token= included. Every
// access log of the gateways uses a format without the query string, and the API hears the
// client's address from the gateway (X-Real-IP) for the login throttle.
func TestHostileGatewayLogsNoQueryString(t *testing.T) {
	for _, file := range []string{"../../deploy/nginx/nginx.conf", "../../deploy/nginx/nginx-cluster.conf"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		conf := regexp.MustCompile(`(?m)#.*$`).ReplaceAllString(string(raw), "")
		formats := map[string]string{}
		for _, m := range regexp.MustCompile(`log_format\s+(\w+)\s+([^;]+);`).FindAllStringSubmatch(conf, -1) {
			formats[m[1]] = m[2]
		}
		logs := regexp.MustCompile(`access_log\s+([^;]+);`).FindAllStringSubmatch(conf, -1)
		if len(logs) == 0 {
			t.Errorf("%s: no access_log: nginx's default format logs $request, query string included", file)
		}
		for _, l := range logs {
			f := strings.Fields(l[1])
			if f[0] == "off" {
				continue
			}
			if len(f) < 2 || formats[f[1]] == "" {
				t.Errorf("%s: access_log %q without a format of ours", file, l[1])
				continue
			}
			if regexp.MustCompile(`\$(request|request_uri|args|query_string|arg_\w+)\b`).MatchString(formats[f[1]]) {
				t.Errorf("%s: log_format %s logs the query string: %s", file, f[1], formats[f[1]])
			}
		}
		if !strings.Contains(conf, "proxy_set_header X-Real-IP $remote_addr") {
			t.Errorf("%s: the API does not hear the client's address", file)
		}
	}
}

// TestConfigRefusesUnboundedHTTPSettings: the bounds of docs/limits.md cannot be configured away.
func TestConfigRefusesUnboundedHTTPSettings(t *testing.T) {
	t.Parallel()
	for name, env := range map[string]map[string]string{
		"no write timeout":            {"HTTP_WRITE_TIMEOUT": "0s"},
		"write timeout under request": {"REQUEST_TIMEOUT": "5s", "HTTP_WRITE_TIMEOUT": "5s"},
		"header timeout over read":    {"HTTP_READ_HEADER_TIMEOUT": "20s", "HTTP_READ_TIMEOUT": "10s"},
		"no idle timeout":             {"HTTP_IDLE_TIMEOUT": "-1s"},
		"feed page under a post":      {"FEED_PAGE_MAX_BYTES": "65535"},
		"no login failures":           {"LOGIN_FAILURES_PER_ACCOUNT": "0"},
		"negative bcrypt slots":       {"BCRYPT_CONCURRENCY": "-1"},
		"proxy not a network":         {"HTTP_TRUSTED_PROXIES": "gateway"},
		"no feed offset":              {"FEED_MAX_OFFSET": "0"},
		"feed offset past any list's": {"FEED_MAX_OFFSET": "1000001"},
		"no reads at once":            {"EXPENSIVE_READS_PER_USER": "0"},
		"no read timeout":             {"DB_READ_TIMEOUT": "0s"},
		"no follows":                  {"FOLLOWS_PER_USER": "0"},
	} {
		if _, err := parseConfig(env); err == nil {
			t.Errorf("%s: accepted %v", name, env)
		}
	}
	cfg, err := parseConfig(map[string]string{"HTTP_TRUSTED_PROXIES": "none"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := cfg.trustedProxies(); err != nil || len(p) != 0 {
		t.Errorf("none: %v %v", p, err)
	}
	cfg, _ = parseConfig(map[string]string{})
	if p, err := cfg.trustedProxies(); err != nil || len(p) != 0 || cfg.FeedPageMaxBytes != 1<<20 || cfg.LoginFailuresPerAccount != 30 {
		t.Errorf("defaults: proxies %v %v, feed %d, logins %d", p, err, cfg.FeedPageMaxBytes, cfg.LoginFailuresPerAccount)
	}
	if cfg.FeedMaxOffset != 1000 || cfg.ExpensiveReadsPerUser != 4 || cfg.DBReadTimeout != 2*time.Second || cfg.FollowsPerUser != 400 {
		t.Errorf("defaults: feed offset %d, reads at once %d, read timeout %v, follows %d",
			cfg.FeedMaxOffset, cfg.ExpensiveReadsPerUser, cfg.DBReadTimeout, cfg.FollowsPerUser)
	}
}
