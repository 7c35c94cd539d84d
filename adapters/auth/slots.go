package auth

import (
	"context"
	"sync"
)

// slots bounds the hashes computed at once and serves waiting logins before waiting
// registrations: a flood of registrations (each a bcrypt hash) must not put logins behind it
// (80 at once made logins wait ~5 s, 2 of 5 answered 503). Waiters of one kind are served in
// arrival order.
type slots struct {
	mu        sync.Mutex
	free      int
	high, low []chan struct{} // waiting logins, waiting registrations
}

func newSlots(n int) *slots { return &slots{free: n} }

// acquire takes a slot, waiting behind every waiting login (and, for a registration, every
// waiting registration), or fails when ctx ends first.
func (s *slots) acquire(ctx context.Context, login bool) error {
	s.mu.Lock()
	if s.free > 0 && len(s.high) == 0 && (login || len(s.low) == 0) {
		s.free--
		s.mu.Unlock()
		return nil
	}
	ch := make(chan struct{})
	if login {
		s.high = append(s.high, ch)
	} else {
		s.low = append(s.low, ch)
	}
	s.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		queued := s.dequeue(ch, login)
		s.mu.Unlock()
		if !queued {
			s.release() // granted as the context ended: give the slot on
		}
		return ctx.Err()
	}
}

// dequeue removes ch from its queue; false when it was no longer there (granted).
func (s *slots) dequeue(ch chan struct{}, login bool) bool {
	q := &s.low
	if login {
		q = &s.high
	}
	for i, c := range *q {
		if c == ch {
			*q = append((*q)[:i], (*q)[i+1:]...)
			return true
		}
	}
	return false
}

// release hands the slot to the first waiting login, else the first waiting registration.
func (s *slots) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range []*[]chan struct{}{&s.high, &s.low} {
		if len(*q) > 0 {
			ch := (*q)[0]
			*q = (*q)[1:]
			close(ch)
			return
		}
	}
	s.free++
}
