package domain_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/socialnet/social/domain"
)

func TestDeliveriesRoundTrip(t *testing.T) {
	type d struct {
		frame string
		to    []string
	}
	in := []d{
		{`{"type":"post.created","position":1}`, []string{"0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "u2"}},
		{`{"type":"dialog.message","position":2}`, nil},
		{string(bytes.Repeat([]byte("x"), 300)), []string{"u3"}},
	}
	body := domain.NewDeliveries(nil)
	size := len(body)
	for _, x := range in {
		body = domain.AppendDelivery(body, []byte(x.frame), x.to)
		size += domain.DeliverySize([]byte(x.frame), x.to)
	}
	if size != len(body) {
		t.Fatalf("DeliverySize sums to %d, the message is %d bytes", size, len(body))
	}
	var out []d
	if err := domain.EachDelivery(body, func(frame []byte, to domain.Recipients) {
		ids := to.Strings()
		if to.Len() != len(ids) {
			t.Errorf("Len %d for %d ids", to.Len(), len(ids))
		}
		out = append(out, d{string(frame), ids})
	}); err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("got %d deliveries, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i].frame != in[i].frame || !slices.Equal(out[i].to, in[i].to) && len(in[i].to) > 0 {
			t.Errorf("delivery %d: got %+v, want %+v", i, out[i], in[i])
		}
	}
	// Every truncation is refused, never read past its end.
	for n := range len(body) {
		err := domain.EachDelivery(body[:n], func([]byte, domain.Recipients) {})
		if n > 0 && err == nil && n != len(body) {
			// A cut exactly between deliveries is a shorter, valid message.
			continue
		}
		if n == 0 && !errors.Is(err, domain.ErrBadDelivery) {
			t.Fatalf("empty message: %v", err)
		}
	}
}

func FuzzEachDelivery(f *testing.F) {
	f.Add(domain.AppendDelivery(domain.NewDeliveries(nil), []byte(`{}`), []string{"a", "b"}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, body []byte) {
		_ = domain.EachDelivery(body, func(frame []byte, to domain.Recipients) {
			n := 0
			for id := range to.All() {
				if len(id) > domain.MaxDeliveryIDLength {
					t.Fatal("id longer than the format allows")
				}
				n++
			}
			if n != to.Len() {
				t.Fatalf("%d ids ranged, Len says %d", n, to.Len())
			}
		})
	})
}

// BenchmarkEachDelivery decodes a feed message as a realtime instance does for every message it
// consumes: one frame for n of its users (500: one of two instances' share of a 1,000-follower
// post; 10,000: a celebrity's post on a busy instance).
func BenchmarkEachDelivery(b *testing.B) {
	frame := bytes.Repeat([]byte("x"), 250)
	for _, n := range []int{1, 500, 10000} {
		to := make([]string, n)
		for i := range to {
			to[i] = fmt.Sprintf("01937a1e-0000-7000-8000-%012d", i) // a UUID's text, as the dispatcher sends
		}
		body := domain.AppendDelivery(domain.NewDeliveries(nil), frame, to)
		b.Run(fmt.Sprintf("recipients=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			var got int
			for b.Loop() {
				if err := domain.EachDelivery(body, func(_ []byte, to domain.Recipients) {
					for range to.All() {
						got++
					}
				}); err != nil {
					b.Fatal(err)
				}
			}
			if got != n*b.N {
				b.Fatalf("%d recipients decoded, want %d", got, n*b.N)
			}
		})
	}
}
