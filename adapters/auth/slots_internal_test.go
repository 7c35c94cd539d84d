package auth

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestWaitingLoginsGoBeforeWaitingRegistrations: with the one slot taken, three registrations and
// then two logins queue; the logins get the slot first, then the registrations, each kind in
// arrival order. A waiter whose context ends leaves the queue and takes nothing.
func TestWaitingLoginsGoBeforeWaitingRegistrations(t *testing.T) {
	s := newSlots(1)
	ctx := context.Background()
	if err := s.acquire(ctx, false); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var order []string
	var wg sync.WaitGroup
	queue := func(name string, login bool) {
		before := queuedOf(s, login)
		wg.Go(func() {
			if err := s.acquire(ctx, login); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			s.release()
		})
		// Wait until it is queued: the order of arrival is the test's.
		waitQueued(t, s, login, before+1)
	}
	queue("register 1", false)
	queue("register 2", false)
	gone, cancel := context.WithCancel(ctx)
	wg.Go(func() {
		if err := s.acquire(gone, true); err == nil {
			t.Error("a cancelled login got a slot")
		}
	})
	waitQueued(t, s, true, 1)
	cancel()
	for deadline := time.Now().Add(5 * time.Second); queuedOf(s, true) > 0; {
		if time.Now().After(deadline) {
			t.Fatal("the cancelled login stayed queued")
		}
		time.Sleep(time.Millisecond)
	}
	queue("login 1", true)
	queue("login 2", true)
	s.release()
	wg.Wait()
	if want := []string{"login 1", "login 2", "register 1", "register 2"}; !slices.Equal(order, want) {
		t.Fatalf("served %v, want %v", order, want)
	}
	if s.free != 1 {
		t.Fatalf("%d slots free after all, want 1", s.free)
	}
}

// queuedOf is how many waiters of a kind are queued.
func queuedOf(s *slots, login bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if login {
		return len(s.high)
	}
	return len(s.low)
}

// waitQueued polls until n waiters of a kind are queued.
func waitQueued(t *testing.T, s *slots, login bool, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); queuedOf(s, login) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d waiters never queued", n)
		}
		time.Sleep(time.Millisecond)
	}
}
