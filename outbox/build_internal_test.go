package outbox

import (
	"testing"

	"github.com/socialnet/social/domain"
)

// TestBuildSendsNothingOfAnAuthorAfterItsRefusedRow: a row the relay refuses (an event type it
// does not know) is retried later; its author's later rows of the batch must not reach followers
// ahead of it, so they are not even published (outcomes releases them). Other authors' rows go.
func TestBuildSendsNothingOfAnAuthorAfterItsRefusedRow(t *testing.T) {
	rows := []*row{
		{author: "a", refuse: "unknown type", frame: []byte(`{"position":1}`)},
		{author: "a", frame: []byte(`{"position":2}`)},
		{author: "b", frame: []byte(`{"position":3}`)},
	}
	rt := routes{byAuthor: map[string][]target{
		"a": {{instance: "rt-1", users: []string{"u1"}}},
		"b": {{instance: "rt-1", users: []string{"u2"}}},
	}}
	ims := build(rows, rt)
	if len(ims) != 1 || len(ims[0].msgs) != 1 {
		t.Fatalf("%d instances, want one message for rt-1", len(ims))
	}
	var frames []string
	if err := domain.EachDelivery(ims[0].msgs[0].Payload, func(frame []byte, _ domain.Recipients) { frames = append(frames, string(frame)) }); err != nil {
		t.Fatal(err)
	}
	if len(frames) != 1 || frames[0] != `{"position":3}` {
		t.Fatalf("published %v, want only the other author's row", frames)
	}
}
