package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/sync/semaphore"
)

// Passwords hashes and checks passwords with bcrypt, a bounded number at a time: a hash takes a
// core for tens of milliseconds (cost 10), so eight concurrent logins on two cores delayed every
// other request of the process (p95 7 → 237 ms). A call beyond the bound waits for a slot, or
// until its context ends (the request timeout: 503).
type Passwords struct {
	cost  int
	slots *semaphore.Weighted
}

// NewPasswords returns a bcrypt hasher; cost 0 means bcrypt.DefaultCost (tests use
// bcrypt.MinCost). concurrency bounds the hashes computed at once; 0 means half the processors
// Go uses, at least one, which leaves the others to the rest of the API.
func NewPasswords(cost, concurrency int) (*Passwords, error) {
	if cost == 0 {
		cost = bcrypt.DefaultCost
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return nil, fmt.Errorf("bcrypt cost must be between %d and %d", bcrypt.MinCost, bcrypt.MaxCost)
	}
	if concurrency < 0 {
		return nil, errors.New("bcrypt concurrency must not be negative")
	}
	if concurrency == 0 {
		concurrency = max(1, runtime.GOMAXPROCS(0)/2)
	}
	return &Passwords{cost: cost, slots: semaphore.NewWeighted(int64(concurrency))}, nil
}

// Hash returns the bcrypt hash of password.
func (p *Passwords) Hash(ctx context.Context, password string) (string, error) {
	if err := p.slots.Acquire(ctx, 1); err != nil {
		return "", fmt.Errorf("wait to hash password: %w", err)
	}
	defer p.slots.Release(1)
	h, err := bcrypt.GenerateFromPassword([]byte(password), p.cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// Match reports whether password matches hash. A malformed hash is an error, not a mismatch.
func (p *Passwords) Match(ctx context.Context, hash, password string) (bool, error) {
	if err := p.slots.Acquire(ctx, 1); err != nil {
		return false, fmt.Errorf("wait to check password: %w", err)
	}
	defer p.slots.Release(1)
	err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
	if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("compare password: %w", err)
	}
	return true, nil
}
