package outbox

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/migrations"
)

// One wake-up takes every notification pgx has received (here: read with a query's answer): the
// relay does not claim once per queued NOTIFY, and the drop does not wait for more.
func TestWaitNotificationDrainsWhatQueued(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.New(t)
	conn, err := pgx.Connect(ctx, db.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN "+NotifyChannel); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		db.Exec(t, "SELECT pg_notify($1, $2)", NotifyChannel, fmt.Sprint(i))
	}
	// A query on the listening connection: the server has sent the notifications before its
	// answer, so they are on this side when the wait starts.
	if _, err := conn.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if notified, err := waitNotification(ctx, conn, 10*time.Second); err != nil || !notified {
		t.Fatalf("first wait: notified %v, err %v", notified, err)
	}
	if notified, err := waitNotification(ctx, conn, 20*time.Millisecond); err != nil || notified {
		t.Fatalf("second wait: notified %v (a queued notification was left), err %v", notified, err)
	}
}

// The outbox trigger (SQL) notifies the channel the relay listens on (Go).
func TestNotifyChannelIsTheTriggers(t *testing.T) {
	sql, err := fs.ReadFile(migrations.FS, "0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	if want := "pg_notify('" + NotifyChannel + "'"; !strings.Contains(string(sql), want) {
		t.Fatalf("migrations/0001_init.sql does not call %s: the relay would never be woken", want)
	}
}
