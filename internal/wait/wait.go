// Package wait is the tests' one way to wait for a condition: poll it until it holds or a
// deadline passes, never sleep a fixed time and hope.
package wait

import (
	"testing"
	"time"
)

// Interval is how often For polls.
const Interval = 10 * time.Millisecond

// For polls cond every Interval until it holds, and returns how long that took; if it does not
// hold within d, the test fails, naming what it waited for.
func For(t testing.TB, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(Interval)
	}
	return time.Since(start)
}
