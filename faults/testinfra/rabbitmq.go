// Package testinfra starts the servers the fault tests break on purpose: private RabbitMQ nodes
// (alone or clustered) and private PostgreSQL servers, each with its own ports and data
// directory, never the shared ones on 5672 and 5432 that the other tests use. Everything it
// starts is stopped and removed in t.Cleanup, even when the test fails.
package testinfra

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// RabbitMQ installation (Debian package): the scripts under lib, not the /usr/sbin wrappers,
// which drop every argument's environment through su.
const (
	rabbitBin   = "/usr/lib/rabbitmq/bin"
	rabbitHome  = "/var/lib/rabbitmq" // holds the shared Erlang cookie
	rabbitOSUsr = "rabbitmq"
)

// RabbitNode is one private RabbitMQ node on this machine.
type RabbitNode struct {
	// Name is the Erlang node name, e.g. social-faults-1a2b3c4d-a@localhost.
	Name string
	// Port is the AMQP port (127.0.0.1 only); DistPort the Erlang distribution port.
	Port, DistPort int
	dir            string
}

// URL is the node's AMQP address with the default guest user (allowed on loopback).
func (n *RabbitNode) URL() string { return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.Port) }

// StartRabbitNodes starts len(labels) standalone nodes in parallel (a node takes about 12 s to
// boot on this machine) and registers their removal. Labels end up in the node names ("a", "b").
func StartRabbitNodes(t testing.TB, labels ...string) []*RabbitNode {
	t.Helper()
	if _, err := os.Stat(filepath.Join(rabbitBin, "rabbitmq-server")); err != nil {
		t.Skipf("rabbitmq-server is not installed: %v", err)
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

func newRabbitNode(t testing.TB, short string) (*RabbitNode, error) {
	dir, err := privateDir(short, rabbitOSUsr)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	n := &RabbitNode{Name: short + "@localhost", Port: ports[0], DistPort: ports[1], dir: dir}
	// Registered before the node starts, so a boot that fails half-way is cleaned up too.
	t.Cleanup(func() { n.destroy(t) })
	conf := fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\nloopback_users.guest = true\n"+
		"log.file.level = info\nlog.console = false\n", n.Port)
	files := map[string]string{
		"rabbitmq.conf":     conf,
		"rabbitmq-env.conf": "", // not /etc/rabbitmq's, which names the system node
		"enabled_plugins":   "[].\n",
	}
	for name, body := range files {
		if err := writeOwned(filepath.Join(dir, name), body, rabbitOSUsr); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func (n *RabbitNode) env() []string {
	return []string{
		"HOME=" + rabbitHome,
		"RABBITMQ_NODENAME=" + n.Name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT=" + strconv.Itoa(n.Port),
		"RABBITMQ_DIST_PORT=" + strconv.Itoa(n.DistPort),
		"RABBITMQ_MNESIA_BASE=" + filepath.Join(n.dir, "mnesia"),
		"RABBITMQ_LOG_BASE=" + filepath.Join(n.dir, "log"),
		"RABBITMQ_PID_FILE=" + n.pidFile(),
		"RABBITMQ_CONFIG_FILE=" + filepath.Join(n.dir, "rabbitmq.conf"),
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(n.dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE=" + filepath.Join(n.dir, "enabled_plugins"),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
		"ERL_EPMD_ADDRESS=127.0.0.1",
	}
}

func (n *RabbitNode) pidFile() string { return filepath.Join(n.dir, "rabbitmq.pid") }

// boot starts the node detached and waits until its applications run.
func (n *RabbitNode) boot() error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := asUser(ctx, rabbitOSUsr, n.env(), filepath.Join(rabbitBin, "rabbitmq-server"), "-detached")
	cmd.Dir = n.dir // erl_crash.dump lands here, not in the test's directory
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("start rabbitmq node %s: %w: %s", n.Name, err, out)
	}
	if _, err := n.ctl(ctx, "wait", n.pidFile(), "--timeout", "80"); err != nil {
		return fmt.Errorf("rabbitmq node %s did not start: %w (logs in %s)", n.Name, err, n.dir)
	}
	return nil
}

// Ctl runs `rabbitmqctl -n NODE args...` and fails the test on error.
func (n *RabbitNode) Ctl(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := n.ctl(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (n *RabbitNode) ctl(ctx context.Context, args ...string) (string, error) {
	cmd := asUser(ctx, rabbitOSUsr, []string{"HOME=" + rabbitHome, "ERL_EPMD_ADDRESS=127.0.0.1"},
		filepath.Join(rabbitBin, "rabbitmqctl"), append([]string{"-q", "-n", n.Name}, args...)...)
	cmd.Dir = n.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl -n %s %s: %w: %s", n.Name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// StopApp stops the RabbitMQ application but keeps the Erlang node: the broker is down (every
// client connection is closed, the port refuses) until StartApp.
func (n *RabbitNode) StopApp(t testing.TB) { t.Helper(); n.Ctl(t, "stop_app") }

// StartApp starts the application again and returns once it accepts connections.
func (n *RabbitNode) StartApp(t testing.TB) {
	t.Helper()
	n.Ctl(t, "start_app")
	n.Ctl(t, "await_startup", "--timeout", "60")
}

// JoinCluster makes n a member of other's cluster (stop_app, reset, join_cluster, start_app), as an
// operator would with `rabbitmqctl join_cluster`.
func (n *RabbitNode) JoinCluster(t testing.TB, other *RabbitNode) {
	t.Helper()
	n.Ctl(t, "stop_app")
	n.Ctl(t, "reset")
	n.Ctl(t, "join_cluster", other.Name)
	n.StartApp(t)
}

// Stop shuts the whole node down (the way a machine or pod goes away) and waits for its process
// to exit.
func (n *RabbitNode) Stop(t testing.TB) {
	t.Helper()
	n.Ctl(t, "stop", n.pidFile())
}

// destroy stops the node if it still runs (killing it if it does not stop) and removes its
// directory: no node, data or cluster membership survives the test.
func (n *RabbitNode) destroy(t testing.TB) {
	if pid := readPid(n.pidFile()); pid > 0 && alive(pid) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := n.ctl(ctx, "stop", n.pidFile())
		cancel()
		if err != nil && alive(pid) {
			t.Logf("rabbitmq node %s did not stop (%v); killing pid %d", n.Name, err, pid)
			_ = killPid(pid)
		}
	}
	if err := os.RemoveAll(n.dir); err != nil {
		t.Errorf("remove %s: %v", n.dir, err)
	}
}

// asUser runs name as osUser when we are root (RabbitMQ and PostgreSQL refuse to run as root or
// need their own files), with exactly env added to a minimal environment.
// A detached server may inherit our output pipe: WaitDelay stops waiting for it once the command
// itself has exited.
func asUser(ctx context.Context, osUser string, env []string, name string, args ...string) *exec.Cmd {
	base := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}
	var cmd *exec.Cmd
	if os.Geteuid() != 0 {
		cmd = exec.CommandContext(ctx, name, args...)
		cmd.Env = append(append(base, "HOME="+os.Getenv("HOME")), withoutHome(env)...)
	} else {
		full := append([]string{"-u", osUser, "--", "env", "-i"}, base...)
		full = append(full, env...)
		full = append(full, name)
		cmd = exec.CommandContext(ctx, "runuser", append(full, args...)...)
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// withoutHome drops HOME=: not being root, we use our own home and its .erlang.cookie.
func withoutHome(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "HOME=") {
			out = append(out, kv)
		}
	}
	return out
}

// privateDir makes a world-traversable directory under the temp dir owned by osUser (when we are
// root), for a server that runs as that user.
func privateDir(prefix, osUser string) (string, error) {
	dir, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return "", err
	}
	return dir, chownTo(dir, osUser)
}

func writeOwned(path, body, osUser string) error {
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		return err
	}
	return chownTo(path, osUser)
}

func chownTo(path, osUser string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	u, err := user.Lookup(osUser)
	if err != nil {
		return fmt.Errorf("look up user %s: %w", osUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return os.Chown(path, uid, gid)
}

// readPid reads the first line of a pid file (postmaster.pid has more lines).
func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(strings.TrimSpace(first))
	return pid
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func killPid(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }
