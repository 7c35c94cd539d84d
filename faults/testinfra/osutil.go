package testinfra

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// asUser runs name as osUser when we are root (PostgreSQL refuses to run as root and needs its
// own files), with exactly env added to a minimal environment.
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

// withoutHome drops HOME=: not being root, we use our own home.
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
// root), for a server that runs as that user. It holds the owner file Sweep reads.
func privateDir(prefix, osUser string) (string, error) {
	dir, err := TempDir(prefix)
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	return dir, chownTo(dir, osUser)
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

// moduleFile finds rel (a path from the module root, e.g. "scripts/rabbitmq4"): next to this
// source file's module when the sources are where they were built from, else above the working
// directory (go test runs in the package's directory).
func moduleFile(rel string) (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				p := filepath.Join(d, rel)
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", fmt.Errorf("%s not found above %v", rel, starts)
}
