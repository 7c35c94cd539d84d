package http_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestRegisterThenGetUser(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	u := api.register("Ivan", "Petrov")

	res := api.do("GET", "/user/get/"+u.ID, "", nil)
	if res.Status != 200 {
		t.Fatalf("get: %d %s", res.Status, res.Body)
	}
	var got map[string]string
	res.JSON(t, &got)
	want := map[string]string{"id": u.ID, "first_name": "Ivan", "second_name": "Petrov",
		"birthdate": "1990-05-17", "biography": "bio of Ivan", "city": "Moscow"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("user has fields %v, want exactly %v (no password hash)", got, want)
	}
	if n := api.db.Count(t, "events", "type = 'user.registered'", "payload::text NOT LIKE '%password%'"); n != 1 {
		t.Errorf("user.registered events without password = %d, want 1", n)
	}
}

func TestRegisterRejectsBadInput(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	valid := `"first_name":"A","second_name":"B","biography":"","city":"C","password":"12345678"`
	for name, body := range map[string]string{
		"malformed JSON":      `{"first_name":`,
		"not an object":       `["first_name"]`,
		"empty body":          ``,
		"trailing data":       `{` + valid + `,"birthdate":"2000-01-01"} {}`,
		"number as name":      `{"first_name":5,"second_name":"B","birthdate":"2000-01-01","password":"12345678"}`,
		"invalid date":        `{` + valid + `,"birthdate":"2000-02-30"}`,
		"date in other shape": `{` + valid + `,"birthdate":"01.02.2000"}`,
		"future date":         `{` + valid + `,"birthdate":"2999-01-01"}`,
		"missing names":       `{"birthdate":"2000-01-01","password":"12345678"}`,
		"blank name":          `{"first_name":"  ","second_name":"B","birthdate":"2000-01-01","password":"12345678"}`,
		"short password":      `{"first_name":"A","second_name":"B","birthdate":"2000-01-01","password":"1234"}`,
		"long password":       `{"first_name":"A","second_name":"B","birthdate":"2000-01-01","password":"` + strings.Repeat("x", 73) + `"}`,
		"long name":           `{"first_name":"` + strings.Repeat("я", 101) + `","second_name":"B","birthdate":"2000-01-01","password":"12345678"}`,
		"invalid UTF-8":       "{\"first_name\":\"\xff\",\"second_name\":\"B\",\"birthdate\":\"2000-01-01\",\"password\":\"12345678\"}",
		// Names for impersonation (issue #24, item 10), each refused:
		"BEL in a name":           `{"first_name":"An\u0007na","second_name":"B","birthdate":"2000-01-01","password":"12345678"}`,
		"TAB in a name":           `{"first_name":"An\tna","second_name":"B","birthdate":"2000-01-01","password":"12345678"}`,
		"bidi override":           `{"first_name":"\u202eanna","second_name":"B","birthdate":"2000-01-01","password":"12345678"}`,
		"zero-width space":        `{"first_name":"An\u200bna","second_name":"B","birthdate":"2000-01-01","password":"12345678"}`,
		"BOM":                     `{"first_name":"\ufeffAnna","second_name":"B","birthdate":"2000-01-01","password":"12345678"}`,
		"noncharacter":            `{"first_name":"Anna\uffff","second_name":"B","birthdate":"2000-01-01","password":"12345678"}`,
		"combining marks alone":   `{"first_name":"\u0301\u0301","second_name":"B","birthdate":"2000-01-01","password":"12345678"}`,
		"bidi override in a city": `{"first_name":"A","second_name":"B","city":"\u202eX","birthdate":"2000-01-01","password":"12345678"}`,
	} {
		t.Run(name, func(t *testing.T) {
			expectError(t, api.do("POST", "/user/register", "", body), http.StatusBadRequest)
		})
	}
	if n := api.db.Count(t, "users"); n != 0 {
		t.Errorf("users = %d after bad registrations, want 0", n)
	}
	if n := api.db.Count(t, "events"); n != 0 {
		t.Errorf("events = %d after bad registrations, want 0", n)
	}
}

func TestLogin(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	u := api.register("Olga", "Ivanova")
	for _, tc := range []struct {
		name   string
		body   any
		status int
	}{
		{"right password", map[string]string{"id": u.ID, "password": "password-Olga"}, 200},
		{"wrong password", map[string]string{"id": u.ID, "password": "password-olga"}, 400},
		{"unknown id", map[string]string{"id": "01939c5e-0000-7000-8000-000000000000", "password": "password-Olga"}, 404},
		{"invalid id", map[string]string{"id": "42", "password": "x"}, 400},
		{"missing password", map[string]string{"id": u.ID}, 400},
		{"id of wrong type", `{"id":42,"password":"x"}`, 400},
		{"malformed", `{"id":`, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := api.do("POST", "/login", "", tc.body)
			if tc.status != 200 {
				expectError(t, res, tc.status)
				return
			}
			var got struct {
				Token string `json:"token"`
			}
			res.JSON(t, &got)
			claims, err := api.tokens.Verify(got.Token)
			if err != nil || claims.UserID != u.ID {
				t.Fatalf("token for %s: claims %+v, err %v", u.ID, claims, err)
			}
		})
	}
}

func TestGetUserErrors(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	expectError(t, api.do("GET", "/user/get/not-a-uuid", "", nil), 400)
	expectError(t, api.do("GET", "/user/get/01939c5e-0000-7000-8000-000000000000", "", nil), 404)
}

func TestUserSearchMatchesPrefixesOfBothNames(t *testing.T) {
	t.Parallel()
	api := newTestAPI(t)
	ivan := api.register("Ivan", "Petrov")
	ivanka := api.register("Ivanka", "Petrenko")
	api.register("Ivan", "Sidorov")
	api.register("Pyotr", "Petrov")
	api.register("50%", "Off")

	search := func(query string) []string {
		t.Helper()
		res := api.do("GET", "/user/search?"+query, "", nil)
		if res.Status != 200 {
			t.Fatalf("search %s: %d %s", query, res.Status, res.Body)
		}
		var users []struct {
			ID        string `json:"id"`
			FirstName string `json:"first_name"`
		}
		res.JSON(t, &users)
		ids := make([]string, len(users))
		for i, u := range users {
			ids[i] = u.ID
		}
		return ids
	}
	if got := search("first_name=Iva&last_name=Petr"); !equal(got, []string{ivan.ID, ivanka.ID}) {
		t.Errorf("Iva/Petr = %v, want [%s %s]", got, ivan.ID, ivanka.ID)
	}
	if got := search("first_name=iva&last_name=PETR"); !equal(got, []string{ivan.ID, ivanka.ID}) {
		t.Errorf("iva/PETR = %v, want [%s %s]: names match case-insensitively", got, ivan.ID, ivanka.ID)
	}
	if got := search("first_name=Ivan&last_name=Petrov"); !equal(got, []string{ivan.ID}) {
		t.Errorf("Ivan/Petrov = %v, want [%s]", got, ivan.ID)
	}
	if got := search("first_name=5_%25&last_name="); len(got) != 0 {
		t.Errorf("wildcards must match literally: got %v", got)
	}
	if got := search("first_name=Nobody&last_name=Petrov"); got == nil || len(got) != 0 {
		t.Errorf("no match = %v, want []", got)
	}
	expectError(t, api.do("GET", "/user/search?first_name=%FF", "", nil), 400)

	// Case folds beyond ASCII: under a cluster made in locale C (SQL_ASCII, as PostgreSQL's
	// package makes on a machine with no locale set) lower() leaves Cyrillic as it is and this
	// fails; scripts/services makes its cluster in C.UTF-8.
	cyrillic := api.register("Иван", "Петров")
	if got := search("first_name=" + url.QueryEscape("иВА") + "&last_name=" + url.QueryEscape("ПЕТР")); !equal(got, []string{cyrillic.ID}) {
		t.Errorf("иВА/ПЕТР = %v, want [%s]: Cyrillic names match case-insensitively", got, cyrillic.ID)
	}

	// One name, one form (NFC at the boundary): a name registered decomposed (e + U+0301) is found
	// by its composed form, and the other way round.
	decomposed := api.register("Rene\u0301e", "Me\u0301nard")
	composed := api.register("Zoë", "Brontë")
	if got := search("first_name=Ren%C3%A9e"); !equal(got, []string{decomposed.ID}) {
		t.Errorf("composed query for a decomposed name = %v, want [%s]", got, decomposed.ID)
	}
	if got := search("first_name=Zoe%CC%88&last_name=Bront"); !equal(got, []string{composed.ID}) {
		t.Errorf("decomposed query for a composed name = %v, want [%s]", got, composed.ID)
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
