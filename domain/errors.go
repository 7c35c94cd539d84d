// Package domain holds the entities, events and rules of the social network. It imports only the
// standard library: storage and transport live in adapters.
package domain

import (
	"errors"
	"fmt"
)

// Error codes. The HTTP adapter maps each to exactly one status (adapters/http/errors.go).
const (
	EINVALID      = "invalid"      // malformed or invalid input
	EUNAUTHORIZED = "unauthorized" // missing, invalid or expired credentials
	EFORBIDDEN    = "forbidden"    // authenticated, but not yours
	ENOTFOUND     = "not_found"    // unknown id
	ECONFLICT     = "conflict"     // concurrent write to the same aggregate
	EUNAVAILABLE  = "unavailable"  // database or broker unreachable: retry later
	ETHROTTLED    = "throttled"    // too many attempts (failed logins): retry later
	EINTERNAL     = "internal"
)

// Error is an application error whose Message is safe to show to a client.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf builds an *Error with a client-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL for any other error and
// "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the client-safe message of err; internal errors get a generic text so driver
// or SQL details never reach a client.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Internal error."
}
