package websocket

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Buffer sizes of a hijacked socket. net/http hands over its 4 KiB reader and 4 KiB writer, which
// coder/websocket keeps for the socket's life: 8 KiB per idle socket. A push-only socket reads
// only control frames (≤ 131 bytes). Writes go through the socket's wire, which holds each batch
// of frames until one write(2) (wire.go); the bufio.Writer in front of it only needs to take a
// control frame whole (≤ 127 bytes), so that coder/websocket hands the wire one Write per frame.
const (
	readBufferSize  = 256
	writeBufferSize = 128
)

// smallBuffers is the ResponseWriter given to websocket.Accept: its Hijack replaces net/http's
// buffers with small ones (keeping any bytes the client already sent) and puts the socket's wire
// between coder/websocket and the connection.
type smallBuffers struct {
	http.ResponseWriter
	timeout time.Duration      // the wire's bound on a blocked write
	writes  prometheus.Counter // the wire's write(2) count
	wire    *wire              // set by Hijack
}

func (w *smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil { // normally empty: net/http flushed the 101
		nc.Close()
		return nil, nil, err
	}
	var r io.Reader = nc
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(b)), nc)
	}
	w.wire = newWire(nc, w.timeout, w.writes)
	return w.wire, bufio.NewReadWriter(bufio.NewReaderSize(r, readBufferSize), bufio.NewWriterSize(w.wire, writeBufferSize)), nil
}
