package http_test

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	httpapi "github.com/socialnet/social/adapters/http"
	"github.com/socialnet/social/adapters/postgres"
)

// BenchmarkPostCreate measures POST /post/create through the whole API (echo, JWT, JSON,
// PostgreSQL with synchronous commit) at 16 concurrent requests, the API pool's size. Profile it:
//
//	go test ./adapters/http -run '^$' -bench PostCreate -benchtime 5s -cpuprofile /tmp/api.cpu
//	go tool pprof -top /tmp/api.cpu
//
// BenchmarkPostCreateService is the same without HTTP: the difference is the API's own cost.
func BenchmarkPostCreate(b *testing.B) {
	a := newTestAPI(b, func(c *httpapi.Config) { c.PostsPerUser = 1 << 30 }) // one user posts as fast as the API takes it
	u := a.register("Bench", "Mark")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var n atomic.Int64
	b.SetParallelism(16 / max(1, runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := `{"text":"bench post ` + strconv.FormatInt(n.Add(1), 10) + `"}`
			req, _ := http.NewRequest(http.MethodPost, a.srv.URL+"/post/create", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+u.Token)
			req.Header.Set("Content-Type", "application/json")
			res, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "posts/s")
}

func BenchmarkPostCreateService(b *testing.B) {
	a := newTestAPI(b)
	u := a.register("Bench", "Mark")
	posts := postgres.NewPostService(a.db.Pool)
	var n atomic.Int64
	b.SetParallelism(16 / max(1, runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err := posts.Create(ctx, u.ID, "bench post "+strconv.FormatInt(n.Add(1), 10))
			cancel()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "posts/s")
}
