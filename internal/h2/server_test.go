package h2

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/phasedhq/phased/internal/h2/h2test"
	"golang.org/x/net/http2"
)

// serve starts srv on a TLS listener on 127.0.0.1 and returns a client
// that speaks HTTP/2 to it and the base URL.
func serve(t *testing.T, srv *Server) (*http.Client, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close() // connections the client dialled and never used
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.(*tls.Conn).Handshake(); err != nil {
					c.Close()
					return
				}
				srv.ServeConn(c)
			}()
		}
	}()
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}, "https://" + ln.Addr().String()
}

func TestInlineAndHandler(t *testing.T) {
	var inlined, handled atomic.Int32
	srv := &Server{
		Inline: func(_ net.Conn, r *Request) (Answer, bool) {
			if r.Path != "/small" {
				return Answer{}, false
			}
			inlined.Add(1)
			return Answer{Status: 200, Header: []byte("Content-Type: text/plain\r\nContent-Length: 6\r\nX-Way: inline\r\n"), Body: []byte("hello\n")}, true
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			handled.Add(1)
			fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.Path, r.Proto)
		}),
	}
	cl, base := serve(t, srv)
	for _, tc := range []struct{ path, body, way string }{
		{"/small", "hello\n", "inline"},
		{"/other", "GET /other HTTP/2.0", ""},
	} {
		resp, err := cl.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || string(b) != tc.body || resp.Header.Get("X-Way") != tc.way || resp.Header.Get("Date") == "" {
			t.Fatalf("%s: %s %q %v", tc.path, resp.Proto, b, resp.Header)
		}
	}
	resp, err := cl.Head(base + "/small")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentLength != 6 {
		t.Fatalf("HEAD: content length %d", resp.ContentLength)
	}
	if inlined.Load() != 2 || handled.Load() != 1 {
		t.Fatalf("inlined %d, handled %d", inlined.Load(), handled.Load())
	}
}

// A body larger than every window both ways: the request's is read as it
// comes, the response's sent as the client's windows open.
func TestBodiesBeyondTheWindows(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Trailer", "X-Sum")
		w.Write(bytes.Repeat(b, 2))
		w.Header().Set("X-Sum", fmt.Sprint(len(b)))
	})}
	cl, base := serve(t, srv)
	body := bytes.Repeat([]byte("0123456789abcdef"), 300<<10/16*10) // 3 MB
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := cl.Post(base+"/echo", "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil || len(got) != 2*len(body) || !bytes.Equal(got[:len(body)], body) {
				t.Errorf("echo: %d bytes, %v", len(got), err)
			}
			if resp.Trailer.Get("X-Sum") != fmt.Sprint(len(body)) {
				t.Errorf("trailer: %v", resp.Trailer)
			}
		}()
	}
	wg.Wait()
}

func TestStreamingAndSniffing(t *testing.T) {
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sniff":
			io.WriteString(w, "<html><body>hi</body></html>")
		case "/stream":
			for i := range 3 {
				fmt.Fprintf(w, "part %d\n", i)
				w.(http.Flusher).Flush()
				time.Sleep(10 * time.Millisecond)
			}
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		}
	})}
	cl, base := serve(t, srv)
	get := func(path string) (*http.Response, string) {
		resp, err := cl.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	if resp, b := get("/sniff"); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || resp.ContentLength != int64(len(b)) {
		t.Fatalf("sniff: %v %d", resp.Header, resp.ContentLength)
	}
	if resp, b := get("/stream"); b != "part 0\npart 1\npart 2\n" || resp.ContentLength != -1 {
		t.Fatalf("stream: %q %d", b, resp.ContentLength)
	}
	if resp, b := get("/nocontent"); resp.StatusCode != 204 || b != "" {
		t.Fatalf("204: %d %q", resp.StatusCode, b)
	}
	if resp, b := get("/close"); b != "bye" || resp.Header.Get("Connection") != "" {
		t.Fatalf("close: %q %v", b, resp.Header)
	}
	if _, b := get("/sniff"); !strings.Contains(b, "hi") {
		t.Fatalf("after a GOAWAY, a new connection: %q", b)
	}
}

// Many concurrent streams on one connection, inline and handled mixed.
func TestConcurrentStreams(t *testing.T) {
	srv := &Server{
		Inline: func(_ net.Conn, r *Request) (Answer, bool) {
			if !strings.HasPrefix(r.Path, "/i/") {
				return Answer{}, false
			}
			return Answer{Status: 200, Header: []byte("Content-Length: " + fmt.Sprint(len(r.Path)) + "\r\n"), Body: []byte(r.Path)}, true
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(time.Millisecond)
			io.WriteString(w, r.URL.Path)
		}),
	}
	cl, base := serve(t, srv)
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path := fmt.Sprintf("/h/%d", i)
			if i%2 == 0 {
				path = fmt.Sprintf("/i/%d", i)
			}
			resp, err := cl.Get(base + path)
			if err != nil {
				t.Error(err)
				return
			}
			b, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != path {
				t.Errorf("%s: %q %v %v", path, b, rerr, resp.Header)
			}
		}()
	}
	wg.Wait()
}

// A connection with no stream open is closed after IdleTimeout, whether
// its last request was answered inline or by a handler that ended after
// the reader went back to waiting; one whose handler runs longer is not.
func TestIdleTimeout(t *testing.T) {
	closed := make(chan struct{}, 8)
	srv := &Server{
		IdleTimeout: 300 * time.Millisecond,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed {
				closed <- struct{}{}
			}
		},
		Inline: func(_ net.Conn, r *Request) (Answer, bool) {
			return Answer{Status: 200, Body: []byte("i")}, r.Path == "/inline"
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d, _ := time.ParseDuration(r.URL.Query().Get("sleep"))
			time.Sleep(d)
			io.WriteString(w, "h")
		}),
	}
	cl, base := serve(t, srv)
	for _, path := range []string{"/inline", "/h?sleep=50ms", "/h?sleep=700ms"} {
		start := time.Now()
		resp, err := cl.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		if took := time.Since(start); path == "/h?sleep=700ms" && took < 700*time.Millisecond {
			t.Fatalf("%s: answered in %v", path, took)
		}
		select {
		case <-closed:
		case <-time.After(3 * time.Second):
			t.Fatalf("%s: the connection was not closed when idle", path)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("%s: closed after %v", path, took)
		}
	}
}

// A client's RST_STREAM cancels the handler's context; a request body's
// trailers reach Request.Trailer; 100 Continue is sent when the handler
// reads a body that waits for it.
func TestResetTrailersContinue(t *testing.T) {
	cancelled := make(chan struct{})
	srv := &Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/wait":
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			close(cancelled)
		case "/trailer":
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s", b, r.Trailer.Get("X-Check"))
		}
	})}
	cl, base := serve(t, srv)
	resp, err := cl.Get(base + "/wait")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // the client resets the stream
	select {
	case <-cancelled:
	case <-time.After(3 * time.Second):
		t.Fatal("the handler's context was not cancelled by RST_STREAM")
	}

	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/trailer", pr)
	req.Trailer = http.Header{"X-Check": nil}
	req.Header.Set("Expect", "100-continue")
	go func() {
		io.WriteString(pw, "body")
		req.Trailer.Set("X-Check", "ok")
		pw.Close()
	}()
	resp, err = cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "body ok" {
		t.Fatalf("trailers: %q", b)
	}
}

// A frame the framer refuses as a connection error (a DATA frame on stream
// 0) is answered with GOAWAY and that error's code.
func TestFramerErrorsGetGoAway(t *testing.T) {
	cl, srv := net.Pipe()
	go (&Server{Handler: http.NotFoundHandler()}).ServeConn(srv)
	defer cl.Close()
	cl.SetDeadline(time.Now().Add(5 * time.Second))
	go func() {
		io.WriteString(cl, http2.ClientPreface)
		fr := http2.NewFramer(cl, nil)
		fr.WriteSettings()
		// A DATA frame header on stream 0, written by hand: the framer's
		// writer refuses to.
		cl.Write([]byte{0, 0, 1, byte(http2.FrameData), 0, 0, 0, 0, 0, 'x'})
	}()
	fr := http2.NewFramer(nil, cl)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY before %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeProtocol {
				t.Fatalf("GOAWAY %v, want PROTOCOL_ERROR", ga.ErrCode)
			}
			return
		}
	}
}

// rawClient serves srv on a loopback TCP connection and returns the
// client's side, which has sent the preface and settings, and its framer.
func rawClient(t *testing.T, srv *Server, settings ...http2.Setting) (net.Conn, *http2.Framer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		ln.Close()
		if err == nil {
			srv.ServeConn(c)
		}
	}()
	c, fr := h2test.Dial(t, ln.Addr().String(), nil, 10*time.Second, settings...)
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return c, fr
}

// awaitReset reads frames until RST_STREAM for id, and returns its code.
func awaitReset(t *testing.T, fr *http2.Framer, id uint32) http2.ErrCode {
	t.Helper()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no RST_STREAM for stream %d: %v", id, err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.StreamID == id {
			return rst.ErrCode
		}
	}
}

// TestSlowBodies: a request body that stops coming fails the handler's Read
// once the grace is spent (min_rate), one that comes too late fails at the
// read timeout, each stream reset with CANCEL; a body at a good rate is
// read whole.
func TestSlowBodies(t *testing.T) {
	type result struct {
		n   int
		err error
		at  time.Duration
	}
	for _, tc := range []struct {
		name    string
		srv     Server
		every   time.Duration // a 100-byte DATA frame this often (0: one, then nothing)
		frames  int
		cut     bool
		earlies time.Duration // not cut before this
	}{
		{"stops", Server{MinRate: 1000, RateGrace: 300 * time.Millisecond, ReadTimeout: 10 * time.Second}, 0, 1, true, 300 * time.Millisecond},
		{"steady", Server{MinRate: 1000, RateGrace: 300 * time.Millisecond, ReadTimeout: 10 * time.Second}, 50 * time.Millisecond, 20, false, 0},
		{"late", Server{ReadTimeout: 400 * time.Millisecond}, 100 * time.Millisecond, 20, true, 400 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan result, 1)
			srv := tc.srv
			srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				start := time.Now()
				b, err := io.ReadAll(r.Body)
				got <- result{len(b), err, time.Since(start)}
			})
			_, fr := rawClient(t, &srv)
			h2test.Request(fr, 1, "POST", "/up", false)
			chunk := bytes.Repeat([]byte("x"), 100)
			go func() {
				for i := range tc.frames {
					if fr.WriteData(1, i == tc.frames-1 && !tc.cut, chunk) != nil {
						return
					}
					time.Sleep(tc.every)
				}
			}()
			var r result
			select {
			case r = <-got:
			case <-time.After(5 * time.Second):
				t.Fatal("the handler still reads the body")
			}
			if !tc.cut {
				if r.err != nil || r.n != tc.frames*100 {
					t.Fatalf("a steady body: %d bytes, %v", r.n, r.err)
				}
				return
			}
			if r.err != errBodyTimeout || r.at < tc.earlies || r.at > tc.earlies+time.Second {
				t.Fatalf("read %d bytes, %v after %v; want %v after %v", r.n, r.err, r.at, errBodyTimeout, tc.earlies)
			}
			if code := awaitReset(t, fr, 1); code != http2.ErrCodeCancel {
				t.Fatalf("RST_STREAM %v, want CANCEL", code)
			}
		})
	}
}

// TestWindowTimeout: a client that gives no flow-control window has its
// stream reset after the write timeout, and the handler's write fails.
func TestWindowTimeout(t *testing.T) {
	failed := make(chan error, 1)
	srv := &Server{WriteTimeout: 300 * time.Millisecond, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte("y"), 100))
		failed <- http.NewResponseController(w).Flush()
	})}
	_, fr := rawClient(t, srv, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	start := time.Now()
	h2test.Request(fr, 1, "GET", "/down", true)
	if code := awaitReset(t, fr, 1); code != http2.ErrCodeCancel {
		t.Fatalf("RST_STREAM %v, want CANCEL", code)
	}
	select {
	case err := <-failed:
		if err == nil || time.Since(start) < 300*time.Millisecond {
			t.Fatalf("the handler's flush: %v after %v", err, time.Since(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's flush still waits")
	}
}

// TestGoAwayThenCloseLingers: a client sends GOAWAY; the server ends the
// connection, closing lingering: its FIN, then it reads and drops what the
// client still sends until the client closes (a second at most), as Go's
// HTTP/2 server reads on for a second after its GOAWAY. Closed at once, a
// frame the client sent after its GOAWAY (h2spec's PING) met a closed
// socket, which reset the connection: h2spec's "3.8/1 Sends a GOAWAY
// frame" failed once on "connection reset by peer" where it wants the
// connection closed. Here the client writes after the server's FIN: a
// reset would fail its second write.
func TestGoAwayThenCloseLingers(t *testing.T) {
	c, fr := rawClient(t, &Server{Handler: http.NotFoundHandler()})
	if err := fr.WriteGoAway(0, http2.ErrCodeNo, nil); err != nil {
		t.Fatal(err)
	}
	// The server's SETTINGS and its ack of ours, then its FIN (EOF).
	for {
		if _, err := fr.ReadFrame(); err != nil {
			if err != io.EOF {
				t.Fatalf("after GOAWAY: %v, want EOF", err)
			}
			break
		}
	}
	for i := range 2 {
		if err := fr.WritePing(false, [8]byte{'h', '2', 's', 'p', 'e', 'c'}); err != nil {
			t.Fatalf("PING %d after the server's FIN: %v, want it read (no reset)", i, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the PINGs: %v, want EOF", err)
	}
}
