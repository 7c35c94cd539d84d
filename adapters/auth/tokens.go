// Package auth issues and verifies the JWT bearer tokens and hashes passwords.
package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/socialnet/social/domain"
)

// MinSecretLen is the shortest accepted JWT_SECRET: HS256 wants at least 256 bits of key.
const MinSecretLen = 32

// Tokens issues and verifies HS256 JWTs whose subject is a user id.
type Tokens struct {
	secret []byte
	ttl    time.Duration
	now    func() time.Time
	// parser is built once: its options are the same for every token.
	parser *jwt.Parser
}

// Claims are what a verified token says.
type Claims struct {
	UserID    string
	ExpiresAt time.Time
}

// NewTokens returns Tokens signing with secret; tokens live for ttl.
func NewTokens(secret string, ttl time.Duration) (*Tokens, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("JWT secret must be at least %d bytes long, got %d", MinSecretLen, len(secret))
	}
	if ttl <= 0 {
		return nil, errors.New("token lifetime must be positive")
	}
	t := &Tokens{secret: []byte(secret), ttl: ttl, now: time.Now}
	t.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return t.now() }),
	)
	return t, nil
}

// Issue returns a signed token for userID.
func (t *Tokens) Issue(userID string) (string, error) {
	now := t.now()
	return t.IssueUntil(userID, now.Add(t.ttl))
}

// IssueUntil returns a token for userID that expires at exp (tests use it for short-lived tokens).
func (t *Tokens) IssueUntil(userID string, exp time.Time) (string, error) {
	now := t.now()
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   userID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	})
	s, err := tok.SignedString(t.secret)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return s, nil
}

// key is the jwt.Keyfunc: one secret, whatever the token says (the parser accepts HS256 only).
func (t *Tokens) key(*jwt.Token) (any, error) { return t.secret, nil }

// Verify checks signature, algorithm (HS256 only: "none" and every other algorithm are refused)
// and expiry, and returns the claims. Any failure is EUNAUTHORIZED.
func (t *Tokens) Verify(token string) (Claims, error) {
	var rc jwt.RegisteredClaims
	_, err := t.parser.ParseWithClaims(token, &rc, t.key)
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return Claims{}, domain.Errorf(domain.EUNAUTHORIZED, "token expired")
		}
		return Claims{}, domain.Errorf(domain.EUNAUTHORIZED, "invalid token")
	}
	if _, err := uuid.Parse(rc.Subject); err != nil {
		return Claims{}, domain.Errorf(domain.EUNAUTHORIZED, "invalid token subject")
	}
	return Claims{UserID: rc.Subject, ExpiresAt: rc.ExpiresAt.Time}, nil
}
