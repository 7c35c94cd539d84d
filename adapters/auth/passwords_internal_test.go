package auth

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// TestPasswordHashingWaitsForASlot: with every slot taken, a check waits, and gives up when its
// context ends, without computing a hash; once a slot is free it runs.
func TestPasswordHashingWaitsForASlot(t *testing.T) {
	t.Parallel()
	p, err := NewPasswords(4, 1)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := p.Hash(context.Background(), "password1")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.slots.acquire(context.Background(), true); err != nil { // a hash in progress
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Match(ctx, hash, "password1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Match with no free slot: %v, want the context's deadline", err)
	}
	if _, err := p.Hash(ctx, "password1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Hash with no free slot: %v, want the context's deadline", err)
	}
	p.slots.release()
	if ok, err := p.Match(context.Background(), hash, "password1"); !ok || err != nil {
		t.Fatalf("Match with a free slot: %v %v", ok, err)
	}
}

func TestPasswordConcurrencyDefaultsToHalfTheProcessors(t *testing.T) {
	p, err := NewPasswords(4, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := max(1, runtime.GOMAXPROCS(0)/2); p.slots.free != want {
		t.Fatalf("%d slots, want %d", p.slots.free, want)
	}
	if _, err := NewPasswords(4, -1); err == nil {
		t.Fatal("negative concurrency accepted")
	}
}
