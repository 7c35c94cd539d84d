package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sync/errgroup"
)

// wsBaseline is a bare coder/websocket server broadcasting one pre-encoded frame to every socket,
// as fast as the sockets drain: the ceiling of websocket fan-out on this machine.
type wsBaseline struct {
	Sockets      int     `json:"sockets"`
	Broadcasts   int64   `json:"broadcasts"`
	Frames       int64   `json:"frames"`
	FramesPerSec float64 `json:"frames_per_s"`
}

// bareWSBaseline runs server and clients in this process, like the benchmark's fleet runs beside
// the realtime instance on the same cores. Each server socket has a writer goroutine fed by a
// 256-frame queue (the hub's bound when this baseline was written; it is now in bytes,
// WS_SEND_QUEUE_BYTES); the broadcaster blocks when a queue is full.
func bareWSBaseline(ctx context.Context, sockets int, dur time.Duration) (*wsBaseline, error) {
	frame := sampleFrame()
	var mu sync.Mutex
	var queues []chan []byte
	var serverWG sync.WaitGroup
	srvCtx, stopSrv := context.WithCancel(ctx)
	defer stopSrv()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return
		}
		defer c.CloseNow()
		serverWG.Add(1)
		defer serverWG.Done()
		readCtx := c.CloseRead(srvCtx)
		q := make(chan []byte, 256)
		mu.Lock()
		queues = append(queues, q)
		mu.Unlock()
		for {
			select {
			case b, ok := <-q:
				if !ok {
					return
				}
				if err := c.Write(readCtx, websocket.MessageText, b); err != nil {
					return
				}
			case <-readCtx.Done():
				return
			}
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	var frames atomic.Int64
	clients := make([]*websocket.Conn, sockets)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(32)
	for i := range clients {
		g.Go(func() error {
			c, _, err := websocket.Dial(gctx, "ws://"+ln.Addr().String()+"/", nil)
			clients[i] = c
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("dial bare server: %w", err)
	}
	var readers sync.WaitGroup
	for _, c := range clients {
		readers.Add(1)
		go func() {
			defer readers.Done()
			buf := make([]byte, 4096)
			for {
				_, r, err := c.Reader(ctx)
				if err != nil {
					return
				}
				for {
					if _, err := r.Read(buf); errors.Is(err, io.EOF) {
						break
					} else if err != nil {
						return
					}
				}
				frames.Add(1)
			}
		}()
	}
	defer func() {
		for _, c := range clients {
			c.CloseNow()
		}
		readers.Wait()
	}()
	for deadline := time.Now().Add(10 * time.Second); ; {
		mu.Lock()
		n := len(queues)
		mu.Unlock()
		if n == sockets {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("only %d of %d sockets accepted", n, sockets)
		}
		time.Sleep(5 * time.Millisecond)
	}

	start := time.Now()
	end := start.Add(dur)
	var broadcasts int64
	for time.Now().Before(end) && ctx.Err() == nil {
		for _, q := range queues {
			q <- frame
		}
		broadcasts++
	}
	want := broadcasts * int64(sockets)
	for deadline := time.Now().Add(30 * time.Second); frames.Load() < want && time.Now().Before(deadline); {
		time.Sleep(2 * time.Millisecond)
	}
	elapsed := time.Since(start).Seconds()
	got := frames.Load()
	return &wsBaseline{Sockets: sockets, Broadcasts: broadcasts, Frames: got, FramesPerSec: float64(got) / elapsed}, nil
}
