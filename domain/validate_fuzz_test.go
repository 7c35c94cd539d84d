package domain

import (
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzValidatePostText(f *testing.F) {
	for _, s := range []string{"", "a", "\xff", "привет", string(make([]byte, 10001))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if err := ValidatePostText(text); err == nil {
			if !utf8.ValidString(text) || text == "" || utf8.RuneCountInString(text) > MaxPostLen {
				t.Fatalf("accepted %q", text)
			}
		} else if ErrorCode(err) != EINVALID {
			t.Fatalf("error %v is not EINVALID", err)
		}
	})
}

func FuzzRegistrationValidate(f *testing.F) {
	f.Add("Ivan", "Petrov", "2000-01-02", "bio", "Moscow", "password1")
	f.Add("", "", "2000-13-01", "", "", "")
	f.Add("\xff", "B", "1899-12-31", "", "", "12345678")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, first, second, birth, bio, city, password string) {
		r := Registration{FirstName: first, SecondName: second, Birthdate: birth, Biography: bio, City: city, Password: password}
		d, err := r.Validate(now)
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if d.After(now) || d.Year() < 1900 || !utf8.ValidString(first+second+bio+city) || len(password) < MinPasswordLen {
			t.Fatalf("accepted %+v", r)
		}
	})
}
