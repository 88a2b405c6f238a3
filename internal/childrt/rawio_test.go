package childrt

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); c.Close() })
	return s.(*net.TCPConn), c.(*net.TCPConn)
}

func TestRawIO(t *testing.T) {
	srv, cli := tcpPair(t)
	// Through a slotConn, as the prefork child holds its connections.
	r := newRawIO(&slotConn{Conn: srv})
	if r == nil {
		t.Fatal("no rawIO for a TCP connection")
	}
	if newRawIO(&replayConn{Conn: &slotConn{Conn: srv}, pending: []byte("x")}) != nil {
		t.Fatal("a rawIO for a connection with bytes to replay")
	}

	// A read waits in the netpoller until data comes.
	go func() {
		time.Sleep(50 * time.Millisecond)
		cli.Write([]byte("hello"))
	}()
	buf := make([]byte, 64)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}

	// The connection's read deadline holds.
	srv.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := r.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past the deadline: %v", err)
	}
	srv.SetReadDeadline(time.Time{})

	// A write larger than the socket buffers waits for the reader and
	// writes everything, in order.
	big := make([]byte, 32<<20) // more than the socket buffers hold
	for i := range big {
		big[i] = byte(i * 7)
	}
	got := make(chan []byte, 1)
	go func() {
		time.Sleep(50 * time.Millisecond) // the writer meets EAGAIN first
		b := make([]byte, len(big))
		_, err := io.ReadFull(cli, b)
		if err != nil {
			b = nil
		}
		got <- b
	}()
	if n, err := r.Write(big); n != len(big) || err != nil {
		t.Fatalf("write: %d of %d, %v", n, len(big), err)
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatal("the reader got other bytes than were written")
	}

	// The write deadline holds when nobody reads.
	srv.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	big = append(big, big...)
	if n, err := r.Write(big); !errors.Is(err, os.ErrDeadlineExceeded) || n >= len(big) {
		t.Fatalf("write nobody reads: %d of %d, %v", n, len(big), err)
	}
}

func TestRawIOEOFAndClose(t *testing.T) {
	srv, cli := tcpPair(t)
	r := newRawIO(srv)
	cli.Write([]byte("last"))
	cli.Close()
	buf := make([]byte, 64)
	if n, err := r.Read(buf); string(buf[:n]) != "last" || err != nil {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	if n, err := r.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer closed: %d, %v", n, err)
	}
	// A read blocked when the connection is closed returns.
	srv2, _ := tcpPair(t)
	r2 := newRawIO(srv2)
	go func() { time.Sleep(50 * time.Millisecond); srv2.Close() }()
	if _, err := r2.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed connection: %v", err)
	}
	if _, err := r2.Write(buf); err == nil {
		t.Fatal("write on a closed connection succeeded")
	}
	// A write to a peer that is gone fails.
	srv3, cli3 := tcpPair(t)
	r3 := newRawIO(srv3)
	cli3.SetLinger(0)
	cli3.Close()
	time.Sleep(20 * time.Millisecond)
	var werr error
	for range 10 {
		if _, werr = r3.Write(buf); werr != nil {
			break
		}
	}
	if !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, syscall.ECONNRESET) {
		t.Fatalf("write to a reset connection: %v", werr)
	}
}

// TestFastPathPrefork: the prefork child's fast path, which reads and
// writes with raw system calls, answers, pipelines and hands over to
// net/http as the other models' does (TestFastPathTimeouts has its
// timeouts).
func TestFastPathPrefork(t *testing.T) {
	_, addr, _, _ := startFast(t, ModelPrefork)
	r, c := exchange(t, addr, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n", 1, "GET")
	if r[0].code != 200 || r[0].path != "fast" || r[0].body != "fast" || r[0].close {
		t.Fatalf("GET /a: %+v", r[0])
	}
	// Many pipelined requests: one write of more than fastOutFlush.
	var raw bytes.Buffer
	const n = 1000
	for range n {
		raw.WriteString("GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	raw.WriteString("GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	c.Write(raw.Bytes())
	rs := readReplies(t, c, bufio.NewReader(c), n+1, "GET")
	for i, r := range rs[:n] {
		if r.path != "fast" || r.body != "fast" {
			t.Fatalf("pipelined response %d: %+v", i, r)
		}
	}
	if rs[n].path != "slow" || !rs[n].close {
		t.Fatalf("the handed-over request: %+v", rs[n])
	}
}
