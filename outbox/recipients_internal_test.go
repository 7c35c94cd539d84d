package outbox

import (
	"context"
	"slices"
	"testing"

	"github.com/socialnet/social/outbox/broker"
)

// recorder is a publishing port that confirms everything and keeps what it was sent.
type recorder struct{ sent []broker.Message }

func (r *recorder) Lanes() int { return 3 }
func (r *recorder) Send(_ context.Context, _ string, msgs []broker.Message) broker.Confirms {
	r.sent = append(r.sent, msgs...)
	return waitDone{}
}

// A row whose event names its recipients (domain.AudienceRecipients) goes to exactly them, each on
// their lane, without reading anyone's followers (this relay has no database); a row the domain
// refused is sent to nobody and ends refused.
func TestEmitterSendsExplicitRecipientsAndNothingOfARefusedRow(t *testing.T) {
	pub := &recorder{}
	r := &Relay{cfg: Config{Publisher: pub}}
	r.cfg.setDefaults()
	r.split = split{size: 2, lanes: pub.Lanes()}
	b := &batch{seq: 1, rows: []*row{
		{id: 1, eventID: "e1", author: "u1", frame: []byte(`{"n":1}`), recipients: []string{"u1", "u2", "u3", "u4", "u5"}},
		{id: 2, eventID: "e2", author: "u9", refuse: "event e2: event type is not relayed"},
		{id: 3, eventID: "e3", author: "u2", frame: []byte(`{"n":3}`), recipients: []string{"u2", "u1"}},
	}}
	b.states = make([]rowState, len(b.rows))
	out := make(chan sent, 64)
	e := &emitter{r: r, pl: &pipeline{blocked: map[string]int64{}}, out: out, fl: newBulkInFlight()}
	e.emitBatch(context.Background(), b)

	got := map[string][]string{}
	for _, m := range pub.sent {
		us := []string{m.RoutingKey}
		for _, c := range m.CC {
			us = append(us, c.(string))
		}
		if len(us) > 2 {
			t.Errorf("message names %v: more than PageSize 2", us)
		}
		for _, u := range us {
			if l := laneOf(u, 3); m.Lane != l {
				t.Errorf("%s on lane %d, want its lane %d", u, m.Lane, l)
			}
		}
		if (m.MessageID == "e1") != (string(m.Body) == `{"n":1}`) {
			t.Errorf("message %s carries %s", m.MessageID, m.Body)
		}
		got[m.MessageID] = append(got[m.MessageID], us...)
	}
	for id, want := range map[string][]string{"e1": {"u1", "u2", "u3", "u4", "u5"}, "e3": {"u1", "u2"}} {
		g := slices.Clone(got[id])
		slices.Sort(g)
		if !slices.Equal(g, want) {
			t.Errorf("%s sent to %v, want %v", id, g, want)
		}
	}
	if _, ok := got["e2"]; ok {
		t.Errorf("the refused row was sent")
	}
	for i, st := range b.states {
		if !st.complete {
			t.Errorf("row %d not complete", i)
		}
	}
	if b.states[1].refused == "" || b.states[1].emitted != 0 {
		t.Errorf("refused row state %+v", b.states[1])
	}
	r.finish(e.pl, b)
	if b.results[1].outcome != refused || b.results[1].retryIn <= 0 {
		t.Errorf("refused row outcome %+v", b.results[1])
	}
}
