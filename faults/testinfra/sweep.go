package testinfra

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// ownerFile names, in each private directory, the pid of the test process that made it.
const ownerFile = "owner.pid"

// Sweep removes what an earlier test run left behind when it was killed before its cleanups ran
// (a `go test -timeout` panic skips t.Cleanup): every private directory whose owning test process
// is gone has its server killed (a RabbitMQ node by `scripts/rabbitmq4 stop NAME --purge`, which
// also deletes the node's data in the RabbitMQ 4 root; a PostgreSQL server by SIGKILL to the pid
// in its pid file) and is deleted. Directories of a concurrent run, whose owner is alive, are left
// alone. Call it from TestMain.
func Sweep() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "social-faults-*"))
	for _, dir := range dirs {
		owner := readPid(filepath.Join(dir, ownerFile))
		if owner <= 0 || alive(owner) {
			continue
		}
		if err := sweepRabbitNode(dir); err != nil {
			fmt.Fprintf(os.Stderr, "testinfra: sweep %s: %v\n", dir, err)
			continue // kept: the next Sweep tries again
		}
		// Our own processes get SIGTERM when the test process dies (Pdeathsig, see StartProcess).
		for _, pidFile := range []string{"rabbitmq.pid", "data/postmaster.pid"} {
			if pid := readPid(filepath.Join(dir, pidFile)); pid > 0 && alive(pid) {
				_ = killPid(pid)
			}
		}
		_ = os.RemoveAll(dir)
	}
}

// TempDir makes a directory for the test run's own files (the social binary) that Sweep removes
// if the run dies before removing it.
func TempDir(prefix string) (string, error) {
	dir, err := os.MkdirTemp("", prefix+"-")
	if err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644)
}
