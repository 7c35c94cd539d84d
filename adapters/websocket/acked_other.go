//go:build !linux

package websocket

// acked is unknown outside Linux: the keepalive then judges a peer by its pong alone.
func (w *wire) acked() (uint64, bool) { return 0, false }
