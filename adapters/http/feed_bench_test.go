package http

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/socialnet/social/domain"
)

// BenchmarkWriteFeed encodes a GET /post/feed page (writePosts: one pass to size it, one to write
// it) of n posts of about a hundred characters, into a writer that keeps nothing.
func BenchmarkWriteFeed(b *testing.B) {
	for _, n := range []int{10, 1000} { // the default limit, the largest
		b.Run(fmt.Sprintf("posts=%d", n), func(b *testing.B) {
			posts := make([]domain.Post, n)
			for i := range posts {
				posts[i] = domain.Post{ID: fmt.Sprintf("01937a1e-0000-7000-8000-%012d", i), AuthorUserID: "01937a1e-0000-7000-8000-000000000001",
					Text: "a post of about a hundred characters, which is what most posts on a social network look like ok", CreatedAt: time.Now()}
			}
			page := domain.FeedPage{Limit: n}
			e := echo.New()
			req := httptest.NewRequest(http.MethodGet, "/post/feed", nil)
			w := &discardResponse{header: http.Header{}}
			c := e.AcquireContext()
			in := make([]domain.Post, n)
			b.ReportAllocs()
			for b.Loop() {
				clear(w.header)
				c.Reset(req, w)
				copy(in, posts) // writePosts drops each post once written
				if err := writePosts(c, page, in, "", DefaultFeedMaxBytes); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(w.n) / int64(b.N))
			if !slices.Equal(in, make([]domain.Post, n)) {
				b.Fatal("the page was not written whole")
			}
		})
	}
}

// discardResponse is an http.ResponseWriter that counts the bytes written and keeps none.
type discardResponse struct {
	header http.Header
	n      int
}

func (w *discardResponse) Header() http.Header { return w.header }
func (w *discardResponse) WriteHeader(int)     {}
func (w *discardResponse) Write(p []byte) (int, error) {
	w.n += len(p)
	return len(p), nil
}
