package postgres

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/domain"
)

// maxSearchResults caps /user/search so a one-letter prefix cannot dump the whole table.
const maxSearchResults = 100

// UserService implements domain.UserService.
type UserService struct {
	pool  *pgxpool.Pool
	reads reader
	now   func() time.Time
}

var _ domain.UserService = (*UserService)(nil)

// NewUserService returns a UserService on pool.
func NewUserService(pool *pgxpool.Pool, opts ...Option) *UserService {
	return &UserService{pool: pool, reads: newReader(pool, opts), now: time.Now}
}

// Register appends user.registered and inserts the users row in one transaction.
func (s *UserService) Register(ctx context.Context, r domain.Registration, birthdate time.Time, passwordHash string) (string, error) {
	id := uuid.Must(uuid.NewV7()).String()
	e := makeEvent(id, 1, domain.EventUserRegistered, domain.UserRegistered{
		UserID: id, FirstName: r.FirstName, SecondName: r.SecondName,
		Birthdate: birthdate.Format(domain.BirthdateLayout), Biography: r.Biography, City: r.City,
	}, s.now())
	b := &pgx.Batch{}
	if err := queueAppend(b, e); err != nil {
		return "", err
	}
	b.Queue(`INSERT INTO users (id, first_name, second_name, birthdate, biography, city, password_hash, version)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 1)`, id, r.FirstName, r.SecondName, birthdate, r.Biography, r.City, passwordHash)
	if err := sendBatch(ctx, s.pool, b); err != nil {
		return "", translate(err, "register user")
	}
	return id, nil
}

const userColumns = `id, first_name, second_name, birthdate, biography, city`

func scanUser(row pgx.Row) (domain.User, error) {
	var u domain.User
	var id uuid.UUID
	err := row.Scan(&id, &u.FirstName, &u.SecondName, &u.Birthdate, &u.Biography, &u.City)
	u.ID = id.String()
	return u, err
}

// User returns the user with id, or ENOTFOUND.
func (s *UserService) User(ctx context.Context, id string) (domain.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if err != nil {
		return domain.User{}, translate(err, "get user")
	}
	return u, nil
}

// PasswordHash returns the stored password hash of id, or ENOTFOUND.
func (s *UserService) PasswordHash(ctx context.Context, id string) (string, error) {
	var hash string
	if err := s.pool.QueryRow(ctx, `SELECT password_hash FROM users WHERE id = $1`, id).Scan(&hash); err != nil {
		return "", translate(err, "get password hash")
	}
	return hash, nil
}

// Search returns users whose names start with the given prefixes, case-insensitively (names and
// prefixes are NFC-normalized at the HTTP boundary), ordered by id.
//
// A prefix is asked as a range, lower(name) ~>=~ prefix AND lower(name) ~<~ next, with next the smallest string
// after every string that starts with the prefix (prefixRange), so the text_pattern_ops indexes
// serve it whatever plan PostgreSQL caches. `name LIKE $1` served them only in a plan made for the
// given value: after five runs of pgx's prepared statement the generic plan took over and read
// the whole users table in id order. An empty prefix
// adds no condition.
func (s *UserService) Search(ctx context.Context, q domain.UserSearch) ([]domain.User, error) {
	limit := q.Limit
	if limit <= 0 || limit > maxSearchResults {
		limit = maxSearchResults
	}
	sql, args := searchQuery(q, limit)
	var users []domain.User
	err := s.reads.read(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		users, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.User, error) { return scanUser(r) })
		return err
	})
	if err != nil {
		return nil, translate(err, "search users")
	}
	return users, nil
}

// searchQuery is Search's SQL and arguments.
func searchQuery(q domain.UserSearch, limit int) (string, []any) {
	var conds []string
	var args []any
	for _, f := range []struct{ column, prefix string }{{"first_name", q.FirstName}, {"second_name", q.LastName}} {
		if f.prefix == "" {
			continue
		}
		// Case-insensitive: the indexes hold lower(name) (migration 0013) and the prefix is
		// lowered the same way. Go's and PostgreSQL's lowercasing agree on the scripts names are
		// written in (Latin, Cyrillic, Greek…); under the plain "C" locale PostgreSQL lowers ASCII
		// only.
		prefix := strings.ToLower(f.prefix)
		args = append(args, prefix)
		conds = append(conds, fmt.Sprintf("lower(%s) ~>=~ $%d", f.column, len(args)))
		if next, ok := prefixRange(prefix); ok {
			args = append(args, next)
			conds = append(conds, fmt.Sprintf("lower(%s) ~<~ $%d", f.column, len(args)))
		}
	}
	where := ""
	if len(conds) > 0 {
		where = " WHERE " + strings.Join(conds, " AND ")
	}
	return `SELECT ` + userColumns + ` FROM users` + where + ` ORDER BY id LIMIT ` + strconv.Itoa(limit), args
}

// prefixRange returns the smallest string greater than every string that starts with prefix, in
// byte order (text_pattern_ops): prefix with its last character replaced by the next code point.
// UTF-8 sorts bytewise as code points do, so the range holds exactly the strings with that prefix.
// ok is false when there is no such string (the prefix is all U+10FFFF): no upper bound needed.
func prefixRange(prefix string) (next string, ok bool) {
	for prefix != "" {
		r, size := utf8.DecodeLastRuneInString(prefix)
		prefix = prefix[:len(prefix)-size]
		switch {
		case r == utf8.MaxRune:
			continue // nothing after it: carry to the previous character
		case r == 0xD7FF:
			r = 0xE000 // skip the surrogates, which UTF-8 cannot hold
		default:
			r++
		}
		return prefix + string(r), true
	}
	return "", false
}
