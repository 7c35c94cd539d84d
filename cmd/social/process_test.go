package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain lets a test run the real binary as a separate process: with SOCIAL_TEST_COMMAND set
// (e.g. "api"), this test binary is `social api`, configured by its environment like any other.
// A separate process has its own memory, so a test can measure the server alone.
func TestMain(m *testing.M) {
	if cmd := os.Getenv("SOCIAL_TEST_COMMAND"); cmd != "" {
		os.Args = append([]string{"social"}, strings.Fields(cmd)...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// process is `social <command>` running as a child of the test.
type process struct {
	cmd  *exec.Cmd
	addr chan string // the first "listening" address it logs
}

// startProcess runs `social <command>` with env (and PATH only) and returns once it listens;
// it is stopped with SIGTERM, and must exit cleanly, when the test ends.
func startProcess(t testing.TB, command string, env map[string]string) (p *process, base string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Last, so they win: the address comes from the "listening" line (info).
	cmd.Env = append(cmd.Env, "SOCIAL_TEST_COMMAND="+command, "LOG_LEVEL=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p = &process{cmd: cmd, addr: make(chan string, 1)}
	var logs sync.WaitGroup
	logs.Add(1)
	go func() {
		defer logs.Done()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line struct{ Msg, Addr, Level string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				select {
				case p.addr <- line.Addr:
				default:
				}
			}
			if line.Level == "ERROR" {
				t.Logf("%s: %s", command, sc.Text())
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { logs.Wait(); done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("social %s: %v", command, err)
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("social %s did not stop", command)
		}
	})
	select {
	case a := <-p.addr:
		return p, "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatalf("social %s did not listen within 30s", command)
	}
	return nil, ""
}
