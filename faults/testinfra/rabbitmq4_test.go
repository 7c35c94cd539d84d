//go:build faults

package testinfra

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
)

// Tests of scripts/rabbitmq4 itself: the fault tests, `make test` and .ci/run rely on it.

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("scripts/rabbitmq4 needs root")
	}
}

// rootDir makes sure the root exists and returns its path, from the script's own answer.
func rootDir(t *testing.T) string {
	t.Helper()
	out, err := rabbitmq4(10*time.Minute, "root")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`root (\S+) ready \(RabbitMQ (4\.\S+)\)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("scripts/rabbitmq4 root: want \"root DIR ready (RabbitMQ 4.x)\", got:\n%s", out)
	}
	return m[1]
}

func inodeAndTime(t *testing.T, path string) (uint64, time.Time) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino, fi.ModTime()
}

// A second `root` reuses the root: no debootstrap runs (a stand-in first on PATH would record it),
// and the root directory and its ready marker are the same files as before.
func TestRabbitMQ4RootIsReused(t *testing.T) {
	needRoot(t)
	t.Parallel()
	root := rootDir(t)
	marker := filepath.Join(root, ".social-rabbitmq4-ready")
	rootIno, _ := inodeAndTime(t, root)
	markerIno, markerTime := inodeAndTime(t, marker)

	bin := t.TempDir()
	called := filepath.Join(bin, "debootstrap-was-called")
	fake := "#!/bin/sh\necho \"$@\" >" + called + "\nexit 1\n"
	if err := os.WriteFile(filepath.Join(bin, "debootstrap"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := rabbitmq4Env(time.Minute, []string{"PATH=" + bin + ":" + os.Getenv("PATH")}, "root")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "root "+root+" ready") {
		t.Errorf("second root: output %q does not say the root is ready", out)
	}
	if _, err := os.Stat(called); err == nil {
		t.Error("second root ran debootstrap")
	}
	if ino, _ := inodeAndTime(t, root); ino != rootIno {
		t.Errorf("root %s was replaced (inode %d, was %d)", root, ino, rootIno)
	}
	if ino, mtime := inodeAndTime(t, marker); ino != markerIno || !mtime.Equal(markerTime) {
		t.Errorf("ready marker rewritten: inode %d mtime %s, was %d %s", ino, mtime, markerIno, markerTime)
	}
	if _, err := os.Stat(root + ".partial"); err == nil {
		t.Errorf("%s.partial exists after a reuse", root)
	}
}

// Starting a node on a busy port (AMQP or distribution) fails before anything starts, with a
// message naming the port.
func TestRabbitMQ4StartRefusesABusyPort(t *testing.T) {
	needRoot(t)
	t.Parallel()
	rootDir(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	free, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	run := strings.ReplaceAll(uuid.NewString(), "-", "")[:8]
	for _, c := range []struct{ label, port, dist string }{
		{"busy-amqp", strconv.Itoa(busyPort), strconv.Itoa(free[0])},
		{"busy-dist", strconv.Itoa(free[1]), strconv.Itoa(busyPort)},
	} {
		n, err := newRabbitNode(t, "social-faults-"+run+"-"+c.label)
		if err != nil {
			t.Fatal(err)
		}
		out, err := rabbitmq4(time.Minute, "start", n.short, c.port, c.dist)
		if err == nil {
			t.Errorf("%s: start on busy port %d succeeded:\n%s", c.label, busyPort, out)
			continue
		}
		if want := "port " + strconv.Itoa(busyPort) + " "; !strings.Contains(out, want) || !strings.Contains(out, "in use") {
			t.Errorf("%s: message does not say port %d is in use:\n%s", c.label, busyPort, out)
		}
		if _, err := rabbitmq4(30*time.Second, "ctl", n.short, "ping"); err == nil {
			t.Errorf("%s: node %s runs after a refused start", c.label, n.Name)
		}
	}
}

// Starting a running node again succeeds and says so; two nodes join as one cluster (both in
// cluster_status), and joining again is a no-op.
func TestRabbitMQ4StartTwiceAndJoin(t *testing.T) {
	needRoot(t)
	t.Parallel()
	nodes := StartRabbitNodes(t, "x", "y")
	x, y := nodes[0], nodes[1]

	out, err := rabbitmq4(time.Minute, "start", x.short, strconv.Itoa(x.Port), strconv.Itoa(x.DistPort))
	if err != nil {
		t.Fatalf("second start of a running node: %v", err)
	}
	if !strings.Contains(out, "already runs") {
		t.Errorf("second start does not say the node already runs:\n%s", out)
	}

	out, err = rabbitmq4(2*time.Minute, "join", y.short, x.short)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "joined") {
		t.Errorf("join: %s", out)
	}
	for _, n := range nodes {
		var status struct {
			DiskNodes    []string `json:"disk_nodes"`
			RunningNodes []string `json:"running_nodes"`
		}
		raw := n.Ctl(t, "cluster_status", "--formatter", "json")
		if err := json.Unmarshal([]byte(raw), &status); err != nil {
			t.Fatalf("cluster_status of %s: %v\n%s", n.Name, err, raw)
		}
		for _, m := range []string{x.Name, y.Name} {
			if !slices.Contains(status.DiskNodes, m) || !slices.Contains(status.RunningNodes, m) {
				t.Errorf("cluster_status of %s: %s not a running member: %+v", n.Name, m, status)
			}
		}
	}
	out, err = rabbitmq4(time.Minute, "join", y.short, x.short)
	if err != nil || !strings.Contains(out, "already a member") {
		t.Errorf("second join: %v: %s", err, out)
	}
}

// Sweep stops and purges the node of a run that died before its cleanups: the marker directory
// names the node and a test process that no longer exists.
func TestSweepRemovesTheNodeOfAKilledRun(t *testing.T) {
	needRoot(t)
	t.Parallel()
	rootDir(t)
	short := "social-faults-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:8] + "-swept"
	dir, err := TempDir(short)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = rabbitmq4(2*time.Minute, "stop", short, "--purge")
		_ = os.RemoveAll(dir)
	})
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{ownerFile: strconv.Itoa(dead.Process.Pid), nodeFile: short + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rabbitmq4(3*time.Minute, "start", short, strconv.Itoa(ports[0]), strconv.Itoa(ports[1])); err != nil {
		t.Fatal(err)
	}

	Sweep()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("marker %s still there after Sweep (%v)", dir, err)
	}
	if out, err := rabbitmq4(time.Minute, "list"); err != nil || strings.Contains(out, short) {
		t.Errorf("node %s still listed after Sweep (%v):\n%s", short, err, out)
	}
	if _, err := rabbitmq4(30*time.Second, "ctl", short, "ping"); err == nil {
		t.Errorf("node %s still answers after Sweep", short)
	}
}
