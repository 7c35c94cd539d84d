package http

import (
	"net/http"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/labstack/echo/v4"

	"github.com/socialnet/social/domain"
)

type registerRequest struct {
	FirstName  string `json:"first_name"`
	SecondName string `json:"second_name"`
	Birthdate  string `json:"birthdate"`
	Biography  string `json:"biography"`
	City       string `json:"city"`
	Password   string `json:"password"`
}

type userResponse struct {
	ID         string `json:"id"`
	FirstName  string `json:"first_name"`
	SecondName string `json:"second_name"`
	Birthdate  string `json:"birthdate"`
	Biography  string `json:"biography"`
	City       string `json:"city"`
}

func toUserResponse(u domain.User) userResponse {
	return userResponse{ID: u.ID, FirstName: u.FirstName, SecondName: u.SecondName,
		Birthdate: u.Birthdate.Format(domain.BirthdateLayout), Biography: u.Biography, City: u.City}
}

// toUserResponses is the JSON array of users (search, the caller's follows).
func toUserResponses(users []domain.User) []userResponse {
	out := make([]userResponse, len(users))
	for i, u := range users {
		out[i] = toUserResponse(u)
	}
	return out
}

func (s *Server) register(c echo.Context) error {
	var req registerRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	r := domain.Registration(req)
	// One name, one form: names are stored NFC-normalized, and search normalizes its prefixes
	// the same way, so "é" typed as e + U+0301 and as U+00E9 are the same letter to both.
	r.FirstName, r.SecondName, r.City = norm.NFC.String(r.FirstName), norm.NFC.String(r.SecondName), norm.NFC.String(r.City)
	birth, err := r.Validate(time.Now())
	if err != nil {
		return err
	}
	if wait := s.registrations.take(addressKey(c.RealIP()), time.Now()); wait > 0 {
		return throttled(wait, "registrations from this address")
	}
	hash, err := s.cfg.Passwords.Hash(c.Request().Context(), r.Password)
	if err != nil {
		return err
	}
	id, err := s.cfg.Users.Register(c.Request().Context(), r, birth, hash)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"user_id": id})
}

type loginRequest struct {
	ID       string `json:"id"`
	Password string `json:"password"`
}

// login checks the password under the login throttle (login_throttle.go): a failure counts
// against the client's address (unknown id or wrong password) and the account (wrong password);
// malformed requests and infrastructure errors count against neither.
func (s *Server) login(c echo.Context) error {
	var req loginRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	id, err := parseID("id", req.ID)
	if err != nil {
		return err
	}
	if err := domain.ValidatePassword(req.Password); err != nil {
		return err
	}
	ctx, now := c.Request().Context(), time.Now()
	address := addressKey(c.RealIP())
	if wait := s.logins.addresses.wait(address, now); wait > 0 {
		return throttled(wait, "failed logins from this address")
	}
	if wait := s.logins.accounts.wait(id, now); wait > 0 {
		return throttled(wait, "failed logins for this account")
	}
	hash, err := s.cfg.Users.PasswordHash(ctx, id)
	if domain.ErrorCode(err) == domain.ENOTFOUND {
		s.logins.addresses.fail(address, now)
	}
	if err != nil {
		return err
	}
	ok, err := s.cfg.Passwords.Match(ctx, hash, req.Password)
	if err != nil {
		return err
	}
	if !ok {
		s.logins.addresses.fail(address, now)
		s.logins.accounts.fail(id, now)
		return domain.Errorf(domain.EINVALID, "wrong password")
	}
	token, err := s.cfg.Tokens.Issue(id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]string{"token": token})
}

func (s *Server) getUser(c echo.Context) error {
	id, err := parseID("id", c.Param("id"))
	if err != nil {
		return err
	}
	u, err := s.cfg.Users.User(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toUserResponse(u))
}

func (s *Server) searchUsers(c echo.Context) error {
	q := domain.UserSearch{FirstName: norm.NFC.String(c.QueryParam("first_name")), LastName: norm.NFC.String(c.QueryParam("last_name"))}
	if err := q.Validate(); err != nil {
		return err
	}
	users, err := s.cfg.Users.Search(c.Request().Context(), q)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toUserResponses(users))
}
