package outbox

import "testing"

// The pipelined relay publishes batch N+1 before batch N is marked. When a row of author A is not
// relayed in N, A's rows in every batch claimed before N's mark committed must be released even
// if the broker confirmed them: the claim could not see the failure, so they are later events that
// would otherwise be marked relayed ahead of the failed row's retry. Rows claimed after the mark
// are ordered by the database again. (The integration test cuts real connections; this one pins
// the rule for an interleaving that is hard to force there: N fails, N+1 is confirmed.)
func TestFinishReleasesLaterRowsOfAnAuthorWhoseEarlierBatchFailed(t *testing.T) {
	r := &Relay{}
	r.cfg.setDefaults()
	pl := &pipeline{blocked: map[string]int64{}}
	mk := func(id int64, author string) *row { return &row{id: id, author: author, position: id} }
	ok := rowState{emitted: 1, confirmed: 1, complete: true}
	check := func(b *batch, want ...outcome) {
		t.Helper()
		r.finish(pl, b)
		for i, res := range b.results {
			if res.outcome != want[i] {
				t.Errorf("batch %d row %d (author %s): outcome %d, want %d", b.seq, res.row.id, res.row.author, res.outcome, want[i])
			}
		}
	}

	// Batch 1: A's row refused by the broker, B's confirmed.
	check(&batch{seq: 1, claimedAfter: 0, rows: []*row{mk(1, "A"), mk(2, "B")},
		states: []rowState{{emitted: 1, complete: true, refused: "nack"}, ok}}, refused, relayed)
	// Batch 2 was claimed and published while batch 1 was in flight; A's later row was
	// confirmed, yet must be released. B is unaffected.
	b2 := &batch{seq: 2, claimedAfter: 0, rows: []*row{mk(3, "A"), mk(4, "B")}, states: []rowState{ok, ok}}
	if !pl.isBlocked("A", b2) || pl.isBlocked("B", b2) {
		t.Errorf("emitter: A blocked %v (want true), B blocked %v (want false)", pl.isBlocked("A", b2), pl.isBlocked("B", b2))
	}
	check(b2, released, relayed)
	// Batch 3 was claimed after batch 1's mark but before batch 2's: A's row 3 was still in
	// flight then (excluded from the claim), so A's row 5 could overtake it. Released too.
	check(&batch{seq: 3, claimedAfter: 1, rows: []*row{mk(5, "A")}, states: []rowState{ok}}, released)
	// A connection lost under B in batch 4 releases B's rows of batch 5 claimed before.
	check(&batch{seq: 4, claimedAfter: 3, rows: []*row{mk(6, "A"), mk(7, "B")},
		states: []rowState{ok, {emitted: 1, complete: true, lost: true}}}, relayed, released)
	// Batch 5 was claimed after batch 3's mark: the database orders A's rows again.
	check(&batch{seq: 5, claimedAfter: 3, rows: []*row{mk(8, "A"), mk(9, "B")}, states: []rowState{ok, ok}}, relayed, released)
	// Within one batch a failure releases the author's later rows, as before pipelining.
	check(&batch{seq: 6, claimedAfter: 5, rows: []*row{mk(10, "C"), mk(11, "C"), mk(12, "B")},
		states: []rowState{{emitted: 2, confirmed: 1, complete: true, lost: true}, ok, ok}}, released, released, relayed)
	if len(pl.blocked) > 2 {
		t.Errorf("blocked authors not pruned: %v", pl.blocked)
	}
}
