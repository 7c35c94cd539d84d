package outbox_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/socialnet/social/internal/wait"

	"github.com/socialnet/social/outbox"
)

// A row retried after a later one holds a higher position than its successor; replaying both must
// not stall the relay (it once refused such a claim forever, live posts included).
func TestReplayedRowsWithPositionsOutOfIdOrderAreRelayed(t *testing.T) {
	e := newEnv(t)
	us := e.users(2)
	e.follow(us[0], us[1:])
	c := e.connected(us[1])
	for range 3 {
		e.post(us[0], "x")
	}
	// As if row 2 failed once and was retried after row 3: positions 1, 3, 2.
	e.db.Exec(t, `UPDATE outbox SET status = 'relayed', relayed_at = now(), position = CASE id WHEN 1 THEN 1 WHEN 2 THEN 3 ELSE 2 END`)
	e.db.Exec(t, `SELECT setval('outbox_position_seq', 3)`)
	res, err := outbox.Replay(context.Background(), e.db.Pool, outbox.ReplayOptions{ReplayFilter: outbox.ReplayFilter{FromPosition: 1}})
	if err != nil || res.Enqueued != 3 {
		t.Fatal(res, err)
	}
	e.relay(outbox.Config{Logger: slog.New(slog.DiscardHandler)})
	wait.For(t, 10*time.Second, "3 replayed deliveries", func() bool { return len(c.deliveries()) == 3 })
}
