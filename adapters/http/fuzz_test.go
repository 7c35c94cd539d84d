package http

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/socialnet/social/domain"
)

// FuzzDecodeBody: any body either decodes into the request types or is refused as EINVALID (400);
// it never panics and never yields a value from a body that is not one valid UTF-8 JSON object.
// Seeds: testdata/fuzz/FuzzDecodeBody plus the f.Add calls. CI runs the seeds only.
func FuzzDecodeBody(f *testing.F) {
	for _, s := range []string{
		`{"text":"hello"}`, `{"text":5}`, `{"text":"a"} {}`, `[1]`, ``, `{"id":"x","text":null}`,
		`{"first_name":"Иван","second_name":"B","birthdate":"2000-01-01","password":"12345678"}`,
		"{\"text\":\"\xff\"}", `{"text":"\ud800"}`, `   {"text":"x"}   `,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var post createPostRequest
		err := DecodeBody(body, &post)
		if err != nil {
			if domain.ErrorCode(err) != domain.EINVALID {
				t.Fatalf("error %v is not EINVALID", err)
			}
			return
		}
		if !utf8.Valid(body) || !json.Valid(body) {
			t.Fatalf("accepted a body that is not valid UTF-8 JSON: %q", body)
		}
		var reg registerRequest
		if err := DecodeBody(body, &reg); err != nil && domain.ErrorCode(err) != domain.EINVALID {
			t.Fatalf("register: error %v is not EINVALID", err)
		}
		if post.Text != nil && domain.ValidatePostText(*post.Text) == nil {
			if n := utf8.RuneCountInString(*post.Text); n < 1 || n > domain.MaxPostLen {
				t.Fatalf("validated text of %d characters", n)
			}
		}
	})
}

// FuzzParsePage: offset and limit are either refused (400) or within the documented bounds.
func FuzzParsePage(f *testing.F) {
	for _, s := range [][2]string{{"0", "10"}, {"", ""}, {"-1", "5"}, {"1", "1001"}, {"x", "1"}, {"999999999999999999999", "1"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, offset, limit string) {
		p, err := ParsePage(offset, limit)
		if err != nil {
			if status, _ := classify(err); status != 400 {
				t.Fatalf("error %v maps to %d, want 400", err, status)
			}
			return
		}
		if p.Limit < 1 || p.Limit > domain.MaxFeedLimit || p.Offset < 0 || p.Offset > domain.MaxFeedOffset {
			t.Fatalf("accepted out-of-range page %+v", p)
		}
	})
}
