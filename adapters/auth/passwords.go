package auth

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"golang.org/x/crypto/bcrypt"
)

// Passwords hashes and checks passwords with bcrypt, a bounded number at a time: a hash takes a
// core for tens of milliseconds (cost 10), so unbounded concurrent logins take every core from
// every other request of the process. A call beyond the bound waits for a slot, or
// until its context ends (the request timeout: 503); waiting logins (Match) go before waiting
// registrations (Hash).
type Passwords struct {
	cost  int
	slots *slots
}

// DefaultBcryptCost is the hashing cost when none is given: bcrypt's own default.
const DefaultBcryptCost = bcrypt.DefaultCost

// NewPasswords returns a bcrypt hasher; cost 0 means bcrypt.DefaultCost (tests use
// bcrypt.MinCost). concurrency bounds the hashes computed at once; 0 means half the processors
// Go uses, at least one, which leaves the others to the rest of the API.
func NewPasswords(cost, concurrency int) (*Passwords, error) {
	if cost == 0 {
		cost = DefaultBcryptCost
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
	return &Passwords{cost: cost, slots: newSlots(concurrency)}, nil
}

// Hash returns the bcrypt hash of password (a registration: it waits behind waiting logins).
func (p *Passwords) Hash(ctx context.Context, password string) (string, error) {
	if err := p.slots.acquire(ctx, false); err != nil {
		return "", fmt.Errorf("wait to hash password: %w", err)
	}
	defer p.slots.release()
	h, err := bcrypt.GenerateFromPassword([]byte(password), p.cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// Match reports whether password matches hash. A malformed hash is an error, not a mismatch.
func (p *Passwords) Match(ctx context.Context, hash, password string) (bool, error) {
	if err := p.slots.acquire(ctx, true); err != nil {
		return false, fmt.Errorf("wait to check password: %w", err)
	}
	defer p.slots.release()
	err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
	if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("compare password: %w", err)
	}
	return true, nil
}
