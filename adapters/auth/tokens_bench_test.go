package auth_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/socialnet/social/adapters/auth"
)

// BenchmarkTokensVerify is what every API request and every websocket handshake pays for its
// bearer token.
func BenchmarkTokensVerify(b *testing.B) {
	tokens, err := auth.NewTokens("bench-secret-bench-secret-bench-secret", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	token, err := tokens.Issue(uuid.NewString())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tokens.Verify(token); err != nil {
			b.Fatal(err)
		}
	}
}
