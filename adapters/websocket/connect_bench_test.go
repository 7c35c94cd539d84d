package websocket_test

import (
	"io"
	"testing"

	"github.com/google/uuid"
)

// BenchmarkHubConnect is the realtime's side of connect churn: one iteration is a websocket
// handshake (Bearer JWT), then the client's close and the server's answer, on loopback, one
// after the other. The client is a raw one (rawSocket) so that the hub's work dominates; the
// presence port is a fake (socialbench churn measures the whole, database included).
func BenchmarkHubConnect(b *testing.B) {
	_, tokens, srv := benchHub(b, 1000) // room for sockets the hub has not yet removed
	// A masked close frame (1000, no reason) with a zero mask: the bytes are the status itself.
	closeFrame := []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8}
	b.ReportAllocs()
	for b.Loop() {
		// A user each: one user's handshakes are throttled (Config.HandshakesPerUser).
		conn, br := rawSocket(b, srv.Listener.Addr().String(), tokens, uuid.NewString())
		if _, err := conn.Write(closeFrame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, br); err != nil { // the server's close, then EOF
			b.Fatal(err)
		}
		conn.Close()
	}
}
