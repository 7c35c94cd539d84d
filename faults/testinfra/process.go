package testinfra

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BuildSocial compiles cmd/social with the race detector into dir and returns the binary's path.
// The fault tests run our processes as separate OS processes, exactly as deployed: the same
// wiring as cmd/social, configured through the same environment variables.
func BuildSocial(dir string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
	}
	out := filepath.Join(dir, "social")
	cmd := exec.Command(goBin, "build", "-race", "-o", out, "github.com/socialnet/social/cmd/social")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/social: %w: %s", err, b)
	}
	return out, nil
}

// Process is one running `social <command>`; it collects the JSON log lines of its stderr.
type Process struct {
	Name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // of Wait, set before done closes
	// killed: the test sent SIGKILL on purpose (Kill); the exit it causes is no failure.
	killed bool

	mu      sync.Mutex
	lines   []map[string]any
	raw     []string
	changed chan struct{} // closed and replaced on every new line
}

// StartProcess runs bin with args and exactly env (plus PATH), and registers a graceful stop
// (SIGTERM) in t.Cleanup that fails the test if the process exits with an error or reports a
// data race. name labels its log lines in the test output.
func StartProcess(t testing.TB, name, bin string, env map[string]string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	// If the test process dies without its cleanups (killed, -timeout panic), the kernel sends our
	// processes SIGTERM instead of leaving them running against servers Sweep is about to remove.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	p := &Process{Name: name, cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		p.read(stderr)
	}()
	go func() {
		<-readDone // Wait closes the pipe: read everything first
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *Process) read(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		var m map[string]any
		_ = json.Unmarshal([]byte(line), &m) // race reports and panics are not JSON: kept raw
		p.mu.Lock()
		p.raw = append(p.raw, line)
		p.lines = append(p.lines, m)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
}

// WaitLog waits until a log line satisfies match and returns it; it fails the test after timeout
// or when the process exits first. Only lines after the first `from` lines are considered
// (see Lines), so a test can wait for the NEXT occurrence of an event.
func (p *Process) WaitLog(t testing.TB, timeout time.Duration, from int, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for i := from; ; {
		p.mu.Lock()
		for ; i < len(p.lines); i++ {
			if p.lines[i] != nil && match(p.lines[i]) {
				m := p.lines[i]
				p.mu.Unlock()
				return m
			}
		}
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.done:
			t.Fatalf("%s exited (%v) before logging %s", p.Name, p.err, what)
		case <-deadline.C:
			t.Fatalf("%s did not log %s within %s", p.Name, what, timeout)
		}
	}
}

// Lines is how many log lines were read so far (a starting point for WaitLog).
func (p *Process) Lines() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lines)
}

// Addr waits for the "listening" line of server (api, realtime, dispatcher) and returns its
// address: our processes listen on 127.0.0.1:0, so no port is guessed.
func (p *Process) Addr(t testing.TB, server string) string {
	t.Helper()
	m := p.WaitLog(t, 60*time.Second, 0, "listening ("+server+")", func(m map[string]any) bool {
		return m["msg"] == "listening" && m["server"] == server
	})
	return m["addr"].(string)
}

// Running reports whether the process has not exited.
func (p *Process) Running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for a graceful exit (SIGKILL after 20 s). A non-zero exit or a
// race report fails the test; on failure the process's last log lines are printed.
func (p *Process) stop(t testing.TB) {
	if p.Running() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not exit within 20s of SIGTERM; killing it", p.Name)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	all := strings.Join(p.raw, "\n")
	if strings.Contains(all, "WARNING: DATA RACE") {
		t.Errorf("%s reported a data race", p.Name)
	}
	if p.err != nil && !p.killed {
		t.Errorf("%s exited with %v", p.Name, p.err)
	}
	if t.Failed() {
		var buf bytes.Buffer
		from := max(0, len(p.raw)-150)
		for _, l := range p.raw[from:] {
			fmt.Fprintf(&buf, "  %s| %s\n", p.Name, l)
		}
		t.Logf("last %d log lines of %s:\n%s", len(p.raw)-from, p.Name, buf.String())
	}
}

// Signal is for tests that kill a process on purpose.
func (p *Process) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Kill sends SIGKILL (a crash: no shutdown code runs) and waits for the exit, which the cleanup
// then does not count as a failure.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	if err := p.cmd.Process.Kill(); err != nil && p.Running() {
		t.Fatalf("kill %s: %v", p.Name, err)
	}
	<-p.done
}

// Wait waits for the process to exit or ctx to end.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}
