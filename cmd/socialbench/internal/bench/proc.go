package bench

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat (100 on Linux everywhere).
const clockTicks = 100

// Proc is one reading of a process.
type Proc struct {
	RSS int64   // resident set, bytes
	CPU float64 // user + system time since it started, seconds
}

// ReadProc reads a process's resident set and CPU time from /proc/<pid>/stat; false when the
// process is gone (or pid is 0).
func ReadProc(pid int) (Proc, bool) {
	if pid <= 0 {
		return Proc{}, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Proc{}, false
	}
	// The fields after the ")" that closes the command name: state is field 3, utime 14, stime 15,
	// rss 24 (in pages).
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 22 {
		return Proc{}, false
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	pages, _ := strconv.ParseInt(f[21], 10, 64)
	return Proc{RSS: pages * int64(os.Getpagesize()), CPU: (ut + st) / clockTicks}, true
}

// machine reads the busy and total jiffies of all CPUs from /proc/stat, and how many CPUs there are.
func machine() (busy, all float64, cpus int) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 1
	}
	lines := strings.Split(string(b), "\n")
	for i, v := range strings.Fields(lines[0])[1:] {
		x, _ := strconv.ParseFloat(v, 64)
		all += x
		if i != 3 && i != 4 { // idle, iowait
			busy += x
		}
	}
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "cpu") {
			cpus++
		}
	}
	return busy, all, max(1, cpus)
}

// BrokerPID is the pid of the process on this machine listening on the AMQP URL's port, or 0.
func BrokerPID(amqpURL string) int {
	u, err := url.Parse(amqpURL)
	if err != nil {
		return 0
	}
	port, err := strconv.Atoi(u.Port())
	if u.Port() == "" {
		port, err = 5672, nil
	}
	if err != nil {
		return 0
	}
	return listenerPID(port)
}

// listenerPID returns the pid of the process with a listening TCP socket on port, or 0.
func listenerPID(port int) int {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 || fs[3] != "0A" { // 0A: LISTEN
				continue
			}
			if i := strings.LastIndexByte(fs[1], ':'); i >= 0 {
				if p, err := strconv.ParseInt(fs[1][i+1:], 16, 32); err == nil && int(p) == port {
					inodes["socket:["+fs[9]+"]"] = true
				}
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	fds, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && inodes[l] {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			return pid
		}
	}
	return 0
}

// RaiseNoFile lifts the soft open-file limit to the hard one: 10,000 sockets need 10,000 fds on
// each side.
func RaiseNoFile() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

// Machine describes this machine for a report.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	Memory   string `json:"memory"`
	Go       string `json:"go"`
}

// ReadMachine reads the CPU model and the memory from /proc.
func ReadMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		fmt.Sscanf(strings.TrimPrefix(strings.Split(string(b), "\n")[0], "MemTotal:"), "%f", &kb)
		m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
	}
	return m
}
