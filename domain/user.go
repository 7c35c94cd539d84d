package domain

import (
	"context"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// BirthdateLayout is the wire format of User.Birthdate.
const BirthdateLayout = "2006-01-02"

// Limits on profile fields. Text over these is refused rather than truncated.
const (
	MaxNameLen      = 100
	MaxBiographyLen = 5000
	MaxCityLen      = 100
	MinPasswordLen  = 8
	// MaxPasswordLen is bcrypt's input limit: longer passwords would be silently truncated.
	MaxPasswordLen = 72
)

// User is a registered member. The password hash lives only in the users read model, never in an
// event or on this type.
type User struct {
	ID         string
	FirstName  string
	SecondName string
	Birthdate  time.Time
	Biography  string
	City       string
}

// Registration is what /user/register asks for.
type Registration struct {
	FirstName  string
	SecondName string
	Birthdate  string
	Biography  string
	City       string
	Password   string
}

// Validate checks a registration and returns the parsed birthdate.
func (r Registration) Validate(now time.Time) (time.Time, error) {
	for _, f := range []struct {
		name, value string
		min, max    int
	}{
		{"first_name", r.FirstName, 1, MaxNameLen},
		{"second_name", r.SecondName, 1, MaxNameLen},
		{"biography", r.Biography, 0, MaxBiographyLen},
		{"city", r.City, 0, MaxCityLen},
	} {
		if err := checkText(f.name, f.value, f.min, f.max); err != nil {
			return time.Time{}, err
		}
	}
	for _, f := range []struct{ name, value string }{{"first_name", r.FirstName}, {"second_name", r.SecondName}, {"city", r.City}} {
		if err := checkName(f.name, f.value); err != nil {
			return time.Time{}, err
		}
	}
	if strings.TrimSpace(r.FirstName) == "" || strings.TrimSpace(r.SecondName) == "" {
		return time.Time{}, Errorf(EINVALID, "first_name and second_name must not be blank")
	}
	birth, err := time.Parse(BirthdateLayout, r.Birthdate)
	if err != nil {
		return time.Time{}, Errorf(EINVALID, "birthdate must be a date formatted as YYYY-MM-DD")
	}
	if birth.After(now) || birth.Year() < 1900 {
		return time.Time{}, Errorf(EINVALID, "birthdate must be between 1900-01-01 and today")
	}
	return birth, ValidatePassword(r.Password)
}

// ValidatePassword enforces MinPasswordLen..MaxPasswordLen bytes, at registration and at login:
// bcrypt ignores what follows the 72nd byte, so a longer password at login would match with any
// suffix.
func ValidatePassword(password string) error {
	if n := len(password); n < MinPasswordLen || n > MaxPasswordLen {
		return Errorf(EINVALID, "password must be %d to %d bytes long", MinPasswordLen, MaxPasswordLen)
	}
	return nil
}

// checkName refuses what lets one name pass for another on screen (design.md §2): control
// characters (TAB and BEL included), bidirectional controls (U+202E turns "Anna" into what reads
// as another name), zero-width characters and the BOM, noncharacters, and a name with no letter
// (combining marks alone). Names are NFC-normalized before they get here (at the HTTP boundary,
// the domain imports the standard library only).
func checkName(field, v string) error {
	marksOnly := v != ""
	for _, r := range v {
		switch {
		case unicode.IsControl(r):
			return Errorf(EINVALID, "%s must not contain control characters", field)
		case r == 0x061C || r == 0x200E || r == 0x200F || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069):
			return Errorf(EINVALID, "%s must not contain bidirectional control characters", field)
		case (r >= 0x200B && r <= 0x200D) || r == 0x2060 || r == 0xFEFF:
			return Errorf(EINVALID, "%s must not contain zero-width characters", field)
		case (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE:
			return Errorf(EINVALID, "%s must not contain noncharacters", field)
		case !unicode.Is(unicode.M, r):
			marksOnly = false
		}
	}
	if marksOnly {
		return Errorf(EINVALID, "%s must not be combining marks alone", field)
	}
	return nil
}

func checkText(field, v string, min, max int) error {
	if !utf8.ValidString(v) {
		return Errorf(EINVALID, "%s must be valid UTF-8", field)
	}
	if strings.ContainsRune(v, 0) {
		return Errorf(EINVALID, "%s must not contain NUL characters", field)
	}
	n := utf8.RuneCountInString(v)
	if n < min || n > max {
		if min > 0 {
			return Errorf(EINVALID, "%s must be %d to %d characters long", field, min, max)
		}
		return Errorf(EINVALID, "%s must be at most %d characters long", field, max)
	}
	return nil
}

// UserSearch is a prefix match on both names.
type UserSearch struct {
	FirstName string
	LastName  string
	Limit     int
}

// UserService registers and finds users. Implemented by adapters/postgres.
type UserService interface {
	// Register stores a new user with an already hashed password and returns its id.
	Register(ctx context.Context, r Registration, birthdate time.Time, passwordHash string) (string, error)
	User(ctx context.Context, id string) (User, error)
	// PasswordHash returns the stored hash for id, or ENOTFOUND.
	PasswordHash(ctx context.Context, id string) (string, error)
	Search(ctx context.Context, q UserSearch) ([]User, error)
}

// Validate refuses prefixes that are not valid UTF-8 or longer than a name can be.
func (q UserSearch) Validate() error {
	if err := checkText("first_name", q.FirstName, 0, MaxNameLen); err != nil {
		return err
	}
	return checkText("last_name", q.LastName, 0, MaxNameLen)
}
