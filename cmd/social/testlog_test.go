package main

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// testLogLines is how much of a server's log a failed test shows: its last lines, where the
// failure is.
const testLogLines = 300

// testLog keeps the last testLogLines lines a server logged, and shows them if the test fails:
// passing tests stay quiet, a failing one says what the server saw.
type testLog struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	dropped int
}

// newTestLog returns a writer for a server's log, shown under name when t fails.
func newTestLog(t testing.TB, name string) *testLog {
	l := &testLog{}
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.dropped > 0 {
			t.Logf("%s log: %d earlier lines left out", name, l.dropped)
		}
		for _, line := range l.lines {
			t.Logf("%s log: %s", name, line)
		}
	})
	return l
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.add(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(p), nil
}

func (l *testLog) add(line string) {
	if len(l.lines) == testLogLines {
		copy(l.lines, l.lines[1:])
		l.lines = l.lines[:testLogLines-1]
		l.dropped++
	}
	l.lines = append(l.lines, line)
}

// recordingTB is a test that has failed, recording what it logs.
type recordingTB struct {
	testing.TB
	cleanups []func()
	logged   []string
}

func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recordingTB) Failed() bool     { return true }
func (r *recordingTB) Logf(format string, args ...any) {
	r.logged = append(r.logged, fmt.Sprintf(format, args...))
}

// A failed test shows the server's last lines, and says how many came before them.
func TestTestLogShowsTheLastLinesOfAFailedTest(t *testing.T) {
	r := &recordingTB{TB: t}
	l := newTestLog(r, "social")
	for i := range testLogLines + 5 {
		fmt.Fprintf(l, "line %d\n", i)
	}
	_, _ = l.Write([]byte("no newline yet"))
	for _, f := range r.cleanups {
		f()
	}
	if len(r.logged) != testLogLines+1 || r.logged[0] != "social log: 5 earlier lines left out" ||
		r.logged[len(r.logged)-1] != fmt.Sprintf("social log: line %d", testLogLines+4) {
		t.Fatalf("logged %d lines, first %q, last %q", len(r.logged), r.logged[0], r.logged[len(r.logged)-1])
	}
}
