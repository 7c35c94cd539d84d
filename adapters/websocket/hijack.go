package websocket

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
)

// Buffer sizes of a hijacked socket. net/http hands over its 4 KiB reader and 4 KiB writer, which
// coder/websocket keeps for the socket's life: 8 KiB per idle socket. A push-only socket reads
// only control frames (≤ 131 bytes), and a frame larger than the write buffer goes straight to
// the connection, so small buffers cost nothing but memory saved.
const (
	readBufferSize  = 256
	writeBufferSize = 1024
)

// smallBuffers is the ResponseWriter given to websocket.Accept: its Hijack replaces net/http's
// buffers with small ones (keeping any bytes the client already sent).
type smallBuffers struct{ http.ResponseWriter }

func (w smallBuffers) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w smallBuffers) Hijack() (net.Conn, *bufio.ReadWriter, error) {
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
	return nc, bufio.NewReadWriter(bufio.NewReaderSize(r, readBufferSize), bufio.NewWriterSize(nc, writeBufferSize)), nil
}
