package websocket

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
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
	input   *input             // set by Hijack
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
	// coder/websocket reads the peer from the net.Conn returned here (it resets the reader it is
	// given onto it, keeping only what that reader had buffered), so the bytes net/http already
	// read ahead — a close frame sent right after the upgrade — are served by the conn's Read:
	// handed over in a fresh reader they were dropped, and the next frame was parsed from the
	// middle (1008 "unexpected data message" for a client that sent only a close).
	var r io.Reader = nc
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		r = io.MultiReader(bytes.NewReader(bytes.Clone(b)), nc)
	}
	w.input = &input{r: r}
	w.input.left.Store(-1)
	w.wire = newWire(nc, w.timeout, w.writes)
	w.wire.in = w.input
	return w.wire, bufio.NewReadWriter(bufio.NewReaderSize(w.wire, readBufferSize), bufio.NewWriterSize(w.wire, writeBufferSize)), nil
}

// input is what coder/websocket reads the peer from. Once the socket closes, it reads at most
// closeReadBytes more: coder/websocket's close handshake reads whatever the peer still sends,
// the rest of a frame announced as 2^62 bytes included, byte by byte and with no bound of its
// own (waitCloseHandshake), until the peer's close frame.
type input struct {
	r    io.Reader
	left atomic.Int64 // bytes still allowed after closing began; -1 while open
}

// errCloseReadBound ends a close handshake whose peer sent more than closeReadBytes.
var errCloseReadBound = errors.New("websocket: peer sent too much during the close handshake")

func (in *input) Read(p []byte) (int, error) {
	left := in.left.Load()
	if left == 0 {
		return 0, errCloseReadBound
	}
	if left > 0 && int64(len(p)) > left {
		p = p[:left]
	}
	n, err := in.r.Read(p)
	if left > 0 {
		in.left.Add(-int64(n))
	}
	return n, err
}

// closing starts the bound.
func (in *input) closing() { in.left.CompareAndSwap(-1, closeReadBytes) }
