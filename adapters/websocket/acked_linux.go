package websocket

import "golang.org/x/sys/unix"

// acked returns how many bytes the peer's TCP has acknowledged on this socket so far, and false
// when that is unknown (no descriptor, or not TCP).
func (w *wire) acked() (uint64, bool) {
	if w.raw == nil {
		return 0, false
	}
	var n uint64
	var err error
	if cerr := w.raw.Control(func(fd uintptr) {
		var info *unix.TCPInfo
		if info, err = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			n = info.Bytes_acked
		}
	}); cerr != nil || err != nil {
		return 0, false
	}
	return n, true
}
