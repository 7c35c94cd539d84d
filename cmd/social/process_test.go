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

// childProcess is `social <command>` running as a child of the test.
type childProcess struct {
	cmd  *exec.Cmd
	addr chan string // the first "listening" address it logs
}

// startProcess runs `social <command>` with env (and PATH only) and returns once it listens;
// it is stopped with SIGTERM, and must exit cleanly, when the test ends.
func startProcess(t testing.TB, command string, env map[string]string) (p *childProcess, base string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary is `social` with SOCIAL_TEST_RUN_MAIN=1 (TestMain, cli_test.go): a separate
	// process has its own memory, so a test can measure the server alone.
	cmd := exec.Command(self, strings.Fields(command)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	// Last, so they win: the address comes from the "listening" line (info).
	cmd.Env = append(cmd.Env, "SOCIAL_TEST_RUN_MAIN=1", "LOG_LEVEL=info")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p = &childProcess{cmd: cmd, addr: make(chan string, 1)}
	log := newTestLog(t, "social "+command)
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
			_, _ = log.Write(append(sc.Bytes(), '\n'))
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
