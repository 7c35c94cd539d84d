package wait

import (
	"testing"
	"time"
)

// failing records the failure instead of ending the test.
type failing struct {
	testing.TB
	failed bool
}

func (f *failing) Helper()               {}
func (f *failing) Fatalf(string, ...any) { f.failed = true; panic(f) }

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	polls := 0
	For(t, time.Minute, "the third poll", func() bool { polls++; return polls == 3 })
	if polls != 3 {
		t.Fatalf("polled %d times, want 3", polls)
	}
}

func TestForFailsTheTestAtTheDeadline(t *testing.T) {
	f := &failing{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil && r != f {
				panic(r)
			}
		}()
		For(f, 30*time.Millisecond, "nothing", func() bool { return false })
	}()
	if !f.failed {
		t.Fatal("For returned without failing the test for a condition that never held")
	}
}
