package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/socialnet/social/adapters/amqp/amqptest"
	"github.com/socialnet/social/adapters/postgres/pgtest"
	"github.com/socialnet/social/outbox"
)

// runStatus runs `social outbox status args...` with env on top of the database's URL.
func runStatus(db *pgtest.DB, env map[string]string, args ...string) cliResult {
	var stdout, stderr syncBuffer
	a := &app{stdout: &stdout, stderr: &stderr}
	environ := map[string]string{"DATABASE_URL": db.URL, "LOG_LEVEL": "warn"}
	for k, v := range env {
		environ[k] = v
	}
	err := a.run(context.Background(), append([]string{"outbox", "status"}, args...), environ)
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), err: err}
}

func TestOutboxStatusShowsTheBrokerVersion(t *testing.T) {
	version := brokerVersion(t)
	db := pgtest.New(t)
	env := map[string]string{"AMQP_URL": amqptest.URL()}

	r := runStatus(db, env)
	if r.err != nil {
		t.Fatalf("status: %v\n%s", r.err, r.stderr)
	}
	for _, want := range []string{"broker version:         RabbitMQ " + version + " ("} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("status output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "guest:guest") {
		t.Errorf("status shows the broker's password:\n%s", r.stdout)
	}

	var s outbox.Status
	r = runStatus(db, env, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &s); r.err != nil || err != nil {
		t.Fatalf("status --json: %v, %v: %q", r.err, err, r.stdout)
	}
	if b := s.Broker; b == nil || !b.Reachable || b.Version != version || b.Product != "RabbitMQ" {
		t.Errorf("status --json broker: %+v, want RabbitMQ %s reachable", s.Broker, version)
	}

}

func TestOutboxStatusSaysWhenTheBrokerIsUnreachable(t *testing.T) {
	db := pgtest.New(t)
	env := map[string]string{"AMQP_URL": "amqp://guest:secret@127.0.0.1:1/"}
	r := runStatus(db, env)
	if r.err != nil {
		t.Fatalf("status without a broker failed: %v (the database part must still print)", r.err)
	}
	if !strings.Contains(r.stdout, "broker version:         unknown (unreachable: ") ||
		!strings.Contains(r.stdout, "pending rows:") || strings.Contains(r.stdout, "secret") {
		t.Errorf("status without a broker:\n%s", r.stdout)
	}
	var s outbox.Status
	r = runStatus(db, env, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &s); r.err != nil || err != nil {
		t.Fatalf("status --json: %v, %v: %q", r.err, err, r.stdout)
	}
	if b := s.Broker; b == nil || b.Reachable || b.Version != "" || b.Error == "" ||
		strings.Contains(b.Error, "secret") {
		t.Errorf("status --json without a broker: %+v", s.Broker)
	}
}
