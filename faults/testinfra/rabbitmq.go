// Package testinfra starts the servers the fault tests break on purpose: private RabbitMQ 4 nodes
// (alone or clustered, through scripts/rabbitmq4) and private PostgreSQL servers, each with its
// own ports and data directory, never the shared ones that the other tests use. Everything it
// starts is stopped and removed in t.Cleanup, even when the test fails, and Sweep removes what a
// killed run left behind.
package testinfra

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// nodeFile names, in a RabbitMQ node's marker directory (see newRabbitNode), the scripts/rabbitmq4
// name of the node it stands for.
const nodeFile = "rabbitmq4.node"

// RabbitNode is one private RabbitMQ 4 node on this machine, run by scripts/rabbitmq4 from its
// Debian 13 root (data under the root's /srv/social-nodes/<short name>).
type RabbitNode struct {
	// Name is the Erlang node name, e.g. social-faults-1a2b3c4d-a@localhost.
	Name string
	// Port is the AMQP port (127.0.0.1 only); DistPort the Erlang distribution port.
	Port, DistPort int
	short          string // the script's NAME: Name without @localhost
	dir            string // marker directory in the temp dir: owner pid and node name, for Sweep
}

// URL is the node's AMQP address with the default guest user.
func (n *RabbitNode) URL() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.Port) }

var rootOnce = sync.OnceValues(func() (string, error) {
	// The root is made once per machine (debootstrap, about a minute) and reused afterwards.
	out, err := rabbitmq4(10*time.Minute, "root")
	return out, err
})

// StartRabbitNodes starts len(labels) standalone nodes in parallel and registers their removal.
// Labels end up in the node names ("a", "b").
func StartRabbitNodes(t testing.TB, labels ...string) []*RabbitNode {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("RabbitMQ 4 nodes need root (scripts/rabbitmq4 runs them under chroot)")
	}
	if out, err := rootOnce(); err != nil {
		t.Fatalf("RabbitMQ 4 root: %v", err)
	} else if strings.Contains(out, "creating") {
		t.Log(strings.TrimSpace(out))
	}
	run := strings.ReplaceAll(uuid.NewString(), "-", "")[:8]
	nodes := make([]*RabbitNode, len(labels))
	errs := make(chan error, len(labels))
	for i, label := range labels {
		n, err := newRabbitNode(t, "social-faults-"+run+"-"+label)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
		go func() { errs <- n.boot() }()
	}
	for range labels {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// newRabbitNode makes the node's marker directory (owner pid and node name) before anything is
// started, so that a run killed at any point later leaves Sweep enough to stop and purge the node.
func newRabbitNode(t testing.TB, short string) (*RabbitNode, error) {
	dir, err := TempDir(short)
	if err != nil {
		return nil, err
	}
	n := &RabbitNode{Name: short + "@localhost", short: short, dir: dir}
	// Registered before the node starts, so a boot that fails half-way is cleaned up too.
	t.Cleanup(func() { n.destroy(t) })
	if err := os.WriteFile(filepath.Join(dir, nodeFile), []byte(short+"\n"), 0o644); err != nil {
		return nil, err
	}
	return n, nil
}

// boot starts the node on two free ports and waits until its applications run (the script does).
// Ports are free when picked but may be taken before the node binds them: the script refuses a
// busy port, and boot then tries other ports.
func (n *RabbitNode) boot() error {
	var err error
	for range 3 {
		var ports []int
		if ports, err = freePorts(2); err != nil {
			return err
		}
		n.Port, n.DistPort = ports[0], ports[1]
		var out string
		out, err = rabbitmq4(3*time.Minute, "start", n.short, strconv.Itoa(n.Port), strconv.Itoa(n.DistPort))
		if err == nil {
			return nil
		}
		if !strings.Contains(out, "already in use") {
			break
		}
	}
	return fmt.Errorf("start rabbitmq node %s: %w", n.Name, err)
}

// Ctl runs `rabbitmqctl -q -n NODE args...` (scripts/rabbitmq4 ctl) and fails the test on error.
func (n *RabbitNode) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := rabbitmq4(90*time.Second, append([]string{"ctl", n.short}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// StopApp stops the RabbitMQ application but keeps the Erlang node: the broker is down (every
// client connection is closed, the port refuses) until StartApp.
func (n *RabbitNode) StopApp(t testing.TB) { t.Helper(); n.Ctl(t, "stop_app") }

// StartApp starts the application again and returns once it accepts connections.
//
// Once in several CI runs on a loaded machine, a 4.0.5 node answered start_app yet await_startup
// found the application not running (rabbit_is_not_running) and the test failed in its set-up:
// start_app is asked again, up to three times, before giving up.
func (n *RabbitNode) StartApp(t testing.TB) {
	t.Helper()
	var err error
	for range 3 {
		if _, err = rabbitmq4(90*time.Second, "ctl", n.short, "start_app"); err != nil {
			continue
		}
		if _, err = rabbitmq4(90*time.Second, "ctl", n.short, "await_startup", "--timeout", "60"); err == nil {
			return
		}
		t.Logf("rabbitmq node %s did not come back after start_app (%v); asking again", n.short, err)
	}
	t.Fatal(err)
}

// JoinCluster makes n a member of other's cluster (stop_app, reset, join_cluster, start_app), as an
// operator would with `rabbitmqctl join_cluster` (scripts/rabbitmq4 join).
func (n *RabbitNode) JoinCluster(t testing.TB, other *RabbitNode) {
	t.Helper()
	if _, err := rabbitmq4(2*time.Minute, "join", n.short, other.short); err != nil {
		t.Fatal(err)
	}
}

// Stop shuts the whole node down (the way a machine or pod goes away) and returns once its
// process has exited (the script kills it if the CLI cannot stop it). Its data stays until the
// test ends.
func (n *RabbitNode) Stop(t testing.TB) {
	t.Helper()
	if _, err := rabbitmq4(2*time.Minute, "stop", n.short); err != nil {
		t.Fatal(err)
	}
}

// destroy stops the node if it still runs (killing it if it does not stop) and deletes its data
// and its marker directory: no node, data or cluster membership survives the test.
func (n *RabbitNode) destroy(t testing.TB) {
	if _, err := rabbitmq4(2*time.Minute, "stop", n.short, "--purge"); err != nil {
		t.Errorf("remove rabbitmq node %s: %v (marker kept in %s for Sweep)", n.Name, err, n.dir)
		return
	}
	if err := os.RemoveAll(n.dir); err != nil {
		t.Errorf("remove %s: %v", n.dir, err)
	}
}

// sweepRabbitNode stops and purges the node a dead run's marker directory names.
func sweepRabbitNode(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, nodeFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil // not a RabbitMQ node's marker
	} else if err != nil {
		return err
	}
	_, err = rabbitmq4(2*time.Minute, "stop", strings.TrimSpace(string(b)), "--purge")
	return err
}

// Script is the path of this module's scripts/rabbitmq4.
func Script() (string, error) { return moduleFile("scripts/rabbitmq4") }

// rabbitmq4 runs scripts/rabbitmq4 with args and returns its output (stdout and stderr). The
// output goes to a file, not a pipe: a node started -detached must not keep us waiting for EOF.
func rabbitmq4(timeout time.Duration, args ...string) (string, error) {
	return rabbitmq4Env(timeout, nil, args...)
}

// rabbitmq4Env is rabbitmq4 with env added to (and overriding) ours.
func rabbitmq4Env(timeout time.Duration, env []string, args ...string) (string, error) {
	script, err := Script()
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp("", "rabbitmq4-out-")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, args...)
	cmd.Stdout, cmd.Stderr = f, f
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	runErr := cmd.Run()
	b, _ := os.ReadFile(f.Name())
	out := string(b)
	if runErr != nil {
		return out, fmt.Errorf("scripts/rabbitmq4 %s: %w: %s", strings.Join(args, " "), runErr, strings.TrimSpace(out))
	}
	return out, nil
}
