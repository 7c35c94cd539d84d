package postgres

import (
	"context"
	"errors"
	"net"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/socialnet/social/domain"
)

// SQLSTATE codes we translate at this boundary so upper layers never see a driver type.
const (
	uniqueViolation     = "23505"
	foreignKeyViolation = "23503"
	undefinedTable      = "42P01"
	invalidCatalogName  = "3D000" // database does not exist
	queryCanceled       = "57014" // statement_timeout, or a cancel request
	duplicateDatabase   = "42P04"
)

// IsUndefinedTable reports whether err is PostgreSQL's "relation does not exist".
func IsUndefinedTable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == undefinedTable
}

// translate maps driver errors to domain errors where the caller can act on them: a lost
// connection or a timeout becomes EUNAVAILABLE (HTTP 503, retry later); everything else stays an
// internal error that is logged in full and shown to clients as "Internal error.".
func translate(err error, op string) error {
	if err == nil {
		return nil
	}
	var de *domain.Error
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.Errorf(domain.ENOTFOUND, "not found")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case pgErr.Code == uniqueViolation && pgErr.ConstraintName == "events_aggregate_id_aggregate_version_key":
			return &wrapped{domain.Errorf(domain.ECONFLICT, "concurrent update, try again"), err, op}
		case pgErr.Code == queryCanceled:
			return &wrapped{domain.Errorf(domain.EUNAVAILABLE, "the database took too long to answer: retry later"), err, op}
		case pgErr.Code[:2] == "08" || pgErr.Code[:2] == "57" || pgErr.Code == "53300":
			// connection exception, operator intervention (shutdown), too many connections
			return &wrapped{domain.Errorf(domain.EUNAVAILABLE, "database unavailable"), err, op}
		}
		return &wrapped{nil, err, op}
	}
	var netErr net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) ||
		isConnectError(err) {
		return &wrapped{domain.Errorf(domain.EUNAVAILABLE, "database unavailable"), err, op}
	}
	return &wrapped{nil, err, op}
}

func isConnectError(err error) bool {
	var ce *pgconn.ConnectError
	return errors.As(err, &ce)
}

// wrapped keeps the driver error for logs while exposing the domain error to errors.As.
type wrapped struct {
	domain *domain.Error
	cause  error
	op     string
}

func (w *wrapped) Error() string { return w.op + ": " + w.cause.Error() }

func (w *wrapped) Unwrap() []error {
	if w.domain == nil {
		return []error{w.cause}
	}
	return []error{w.domain, w.cause}
}

func isForeignKey(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == foreignKeyViolation && pgErr.ConstraintName == constraint
}
