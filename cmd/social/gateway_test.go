package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/auth"
	"github.com/socialnet/social/internal/wait"
)

// startGateway runs the shipped deploy/nginx/nginx.conf with Debian's nginx in front of the given
// api and realtime base URLs (compose's host names replaced by them, the port by a free one) and
// returns the gateway's base URL.
func startGateway(t *testing.T, api string, realtime []string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			t.Fatal("nginx is not installed: run scripts/services nginx (make test does)")
		}
	}
	raw, err := os.ReadFile("../../deploy/nginx/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	port := freePort(t)
	hostPort := func(base string) string { return strings.TrimPrefix(base, "http://") }
	conf := string(raw)
	conf = strings.Replace(conf, "server api:8080;", "server "+hostPort(api)+";", 1)
	conf = strings.Replace(conf, "server realtime-1:8081", "server "+hostPort(realtime[0]), 1)
	conf = strings.Replace(conf, "server realtime-2:8081", "server "+hostPort(realtime[1]), 1)
	conf = regexp.MustCompile(`listen 8080;`).ReplaceAllString(conf, fmt.Sprintf("listen 127.0.0.1:%d;", port))
	conf = strings.Replace(conf, "/var/log/nginx/access.log", filepath.Join(dir, "access.log"), 1)
	conf = "pid " + filepath.Join(dir, "nginx.pid") + ";\nerror_log " + filepath.Join(dir, "error.log") + ";\n" + conf
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off;")
	out, _ := os.Create(filepath.Join(dir, "stderr"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log:\n%s", b)
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	wait.For(t, 20*time.Second, "the gateway", func() bool { return httpOK(base + "/healthz") })
	return base
}

// TestGatewayCarriesManyWebsockets: the shipped gateway had `events {}` (one worker, 512
// connections), so it fell over at ~256 websockets (each is two of its connections) and failed its
// own /healthz. 600 websockets of 40 users through it, spread over two realtime instances: every
// one opens, and the API and /healthz still answer through it.
func TestGatewayCarriesManyWebsockets(t *testing.T) {
	if testing.Short() {
		t.Skip("600 websockets through nginx")
	}
	t.Parallel()
	s := newStack(t)
	api, _ := s.start(t, "api")
	rt1, _ := s.start(t, "realtime")
	rt2, _ := s.start(t, "realtime")
	gw := startGateway(t, api, []string{rt1, rt2})

	tokens, err := auth.NewTokens(testSecret, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const users, perUser = 40, 15
	opened := 0
	for range users {
		token, err := tokens.Issue(uuid.NewString())
		if err != nil {
			t.Fatal(err)
		}
		for range perUser {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(gw, "http")+wsPath,
				&websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + token}}})
			cancel()
			if err != nil {
				status := 0
				if resp != nil {
					status = resp.StatusCode
				}
				t.Fatalf("websocket %d through the gateway: %v (status %d)", opened+1, err, status)
			}
			t.Cleanup(func() { c.CloseNow() })
			opened++
		}
	}
	for _, path := range []string{"/healthz", "/openapi.yaml"} {
		if !httpOK(gw + path) {
			t.Fatalf("%s through the gateway failed with %d websockets open", path, opened)
		}
	}
}

// freePort is a local TCP port nothing listens on (yet).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
