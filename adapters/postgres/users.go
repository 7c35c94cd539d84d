package postgres

import (
	"context"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/socialnet/social/domain"
)

// maxSearchResults caps /user/search so a one-letter prefix cannot dump the whole table.
const maxSearchResults = 100

// UserService implements domain.UserService.
type UserService struct {
	pool *pgxpool.Pool
	now  func() time.Time
}

var _ domain.UserService = (*UserService)(nil)

// NewUserService returns a UserService on pool.
func NewUserService(pool *pgxpool.Pool) *UserService {
	return &UserService{pool: pool, now: time.Now}
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

// Search returns users whose names start with the given prefixes (case-sensitive, as the
// text_pattern_ops index serves), ordered by id.
func (s *UserService) Search(ctx context.Context, q domain.UserSearch) ([]domain.User, error) {
	limit := q.Limit
	if limit <= 0 || limit > maxSearchResults {
		limit = maxSearchResults
	}
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users
		WHERE first_name LIKE $1 AND second_name LIKE $2 ORDER BY id LIMIT $3`,
		likePrefix(q.FirstName), likePrefix(q.LastName), limit)
	if err != nil {
		return nil, translate(err, "search users")
	}
	users, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.User, error) { return scanUser(r) })
	if err != nil {
		return nil, translate(err, "search users")
	}
	return users, nil
}

// likePrefix escapes LIKE wildcards so "50%" matches literally.
func likePrefix(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s) + "%"
}
