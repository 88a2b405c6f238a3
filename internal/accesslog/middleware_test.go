package accesslog

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// apacheTime is the time of the examples in Apache's log documentation.
var apacheTime = time.Date(2000, time.October, 10, 13, 55, 36, 0, time.FixedZone("", -7*3600))

// fakeClock returns t on the first call and t+step on every later one.
func fakeClock(t time.Time, step time.Duration) func() time.Time {
	var mu sync.Mutex
	calls := 0
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			return t
		}
		return t.Add(step)
	}
}

// serveOne runs one request through the middleware in format f and returns
// the logged line.
func serveOne(t *testing.T, f Format, h http.HandlerFunc, r *http.Request) string {
	t.Helper()
	var out bytes.Buffer
	w := NewWriter(&out, WriterOptions{FlushInterval: -1})
	newMiddleware(h, w, f, fakeClock(apacheTime, 1234567*time.Nanosecond)).ServeHTTP(httptest.NewRecorder(), r)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// apacheRequest is the request of Apache's documentation example.
func apacheRequest() *http.Request {
	r := httptest.NewRequest("GET", "/apache_pb.gif", nil)
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.0", 1, 0
	r.RemoteAddr = "127.0.0.1:54321"
	r.SetBasicAuth("frank", "secret")
	r.Header.Set("Referer", "http://www.example.com/start.html")
	r.Header.Set("User-Agent", "Mozilla/4.08 [en] (Win98; I ;Nav)")
	return r
}

func gif(w http.ResponseWriter, _ *http.Request) { w.Write(make([]byte, 2326)) }

func TestGoldenLines(t *testing.T) {
	tests := []struct {
		name   string
		format Format
		req    func() *http.Request
		h      http.HandlerFunc
		want   string
	}{
		{
			"apache common", FormatCommon, apacheRequest, gif,
			`127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326` + "\n",
		},
		{
			"apache combined", FormatCombined, apacheRequest, gif,
			`127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"` + "\n",
		},
		{
			// Apache's %D: microseconds (the clock moves 1.234567ms).
			"apache common with duration", FormatCommonDuration, apacheRequest, gif,
			`127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 1234` + "\n",
		},
		{
			"apache combined with duration", FormatCombinedDuration, apacheRequest, gif,
			`127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)" 1234` + "\n",
		},
		{
			"no user, no headers, no body", FormatCombined,
			func() *http.Request {
				r := httptest.NewRequest("POST", "/form?x=1", nil)
				r.RemoteAddr = "[2001:db8::7]:443"
				return r
			},
			func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) },
			`2001:db8::7 - - [10/Oct/2000:13:55:36 -0700] "POST /form?x=1 HTTP/1.1" 204 - "-" "-"` + "\n",
		},
		{
			"empty user, empty referer", FormatCombined,
			func() *http.Request {
				r := httptest.NewRequest("GET", "/", nil)
				r.SetBasicAuth("", "pw")
				r.Header["Referer"] = []string{""}
				r.Header.Set("User-Agent", "curl/8.5.0")
				return r
			},
			func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) },
			`192.0.2.1 - "" [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 404 19 "" "curl/8.5.0"` + "\n",
		},
		{
			"escaping", FormatCombined,
			func() *http.Request {
				r := httptest.NewRequest("GET", "/", nil)
				r.RequestURI = "/a\"b\\c\x1b[2J\xff"
				r.SetBasicAuth("o\"brien", "")
				r.Header.Set("Referer", "http://x/\"quoted\"")
				r.Header["User-Agent"] = []string{"evil\nfake line", "second"}
				return r
			},
			func(http.ResponseWriter, *http.Request) {},
			`192.0.2.1 - o\"brien [10/Oct/2000:13:55:36 -0700] "GET /a\"b\\c\x1b[2J\xff HTTP/1.1" 200 - "http://x/\"quoted\"" "evil\nfake line, second"` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := serveOne(t, tt.format, tt.h, tt.req()); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestJSONLine(t *testing.T) {
	r := apacheRequest()
	r.Header.Set("User-Agent", "bad \xff utf-8 \"quoted\"\n")
	line := serveOne(t, FormatJSON, gif, r)
	if !strings.HasSuffix(line, "}\n") || strings.Count(line, "\n") != 1 {
		t.Fatalf("not one line: %q", line)
	}
	var got struct {
		Time       string `json:"time"`
		RemoteHost string `json:"remote_host"`
		RemoteUser string `json:"remote_user"`
		Request    string `json:"request"`
		Status     int    `json:"status"`
		Bytes      int64  `json:"bytes"`
		Referer    string `json:"referer"`
		UserAgent  string `json:"user_agent"`
		DurationUS int64  `json:"duration_us"`
	}
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("decoding %q: %v", line, err)
	}
	tm, err := time.Parse(time.RFC3339Nano, got.Time)
	if err != nil || !tm.Equal(apacheTime) {
		t.Errorf("time = %q (%v), want %v", got.Time, err, apacheTime)
	}
	want := []struct {
		field    string
		got, exp any
	}{
		{"remote_host", got.RemoteHost, "127.0.0.1"},
		{"remote_user", got.RemoteUser, "frank"},
		{"request", got.Request, "GET /apache_pb.gif HTTP/1.0"},
		{"status", got.Status, 200},
		{"bytes", got.Bytes, int64(2326)},
		{"referer", got.Referer, "http://www.example.com/start.html"},
		{"user_agent", got.UserAgent, "bad \ufffd utf-8 \"quoted\"\n"},
		{"duration_us", got.DurationUS, int64(1234)},
	}
	for _, w := range want {
		if w.got != w.exp {
			t.Errorf("%s = %#v, want %#v", w.field, w.got, w.exp)
		}
	}

	// Without user and headers the fields are empty strings, not absent.
	line = serveOne(t, FormatJSON, func(http.ResponseWriter, *http.Request) {}, httptest.NewRequest("GET", "/", nil))
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"remote_user", "referer", "user_agent"} {
		if v, ok := m[k]; !ok || v != "" {
			t.Errorf("%s = %#v, want \"\"", k, v)
		}
	}
	if m["bytes"] != 0.0 || m["status"] != 200.0 {
		t.Errorf("bytes, status = %v, %v", m["bytes"], m["status"])
	}
}

// TestStatusAndBytes serves real requests and checks %>s and %b.
func TestStatusAndBytes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(file, bytes.Repeat([]byte("x"), 100_000), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method string
		h            http.HandlerFunc
		status       string
		bytes        string
	}{
		{"write", "GET", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") }, "200", "5"},
		{"write header", "GET", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte("ok"))
		}, "201", "2"},
		{"nothing", "GET", func(http.ResponseWriter, *http.Request) {}, "200", "-"},
		{"head", "HEAD", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello") }, "200", "-"},
		{"not modified", "GET", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusNotModified)
			w.Write([]byte("ignored"))
		}, "304", "-"},
		{"early hints", "GET", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Write([]byte("abc"))
		}, "200", "3"},
		{"serve file (ReadFrom)", "GET", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) }, "200", "100000"},
		{"serve file HEAD", "HEAD", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, file) }, "200", "-"},
		{"copy file", "GET", func(w http.ResponseWriter, _ *http.Request) {
			f, err := os.Open(file)
			if err != nil {
				panic(err)
			}
			defer f.Close()
			io.Copy(w, f)
		}, "200", "100000"},
		{"flush", "GET", func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, "b")
			http.NewResponseController(w).Flush()
		}, "200", "2"},
		{"panic", "GET", func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }, "500", "-"},
		{"panic after header", "GET", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusAccepted)
			panic(http.ErrAbortHandler)
		}, "202", "-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := NewWriter(&out, WriterOptions{FlushInterval: -1})
			srv := httptest.NewServer(Middleware(tt.h, w, FormatCommon))
			srv.Config.ErrorLog = log.New(io.Discard, "", 0)
			req, _ := http.NewRequest(tt.method, srv.URL+"/x", nil)
			if resp, err := srv.Client().Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			srv.Close() // waits for the handler and its log line
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			fields := strings.Fields(out.String())
			if len(fields) != 10 {
				t.Fatalf("line %q", out.String())
			}
			if s, b := fields[8], fields[9]; s != tt.status || b != tt.bytes {
				t.Errorf("status, bytes = %s %s, want %s %s (line %q)", s, b, tt.status, tt.bytes, out.String())
			}
		})
	}
}

// TestHijack plays a websocket upgrade: the handler hijacks the connection
// and answers 101 itself.
func TestHijack(t *testing.T) {
	var out bytes.Buffer
	w := NewWriter(&out, WriterOptions{FlushInterval: -1})
	logged := Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		conn, brw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer conn.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello")
		brw.Flush()
	}), w, FormatCommon)
	// The server does not wait for handlers of hijacked connections, so the
	// test waits for the middleware to return.
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		logged.ServeHTTP(w, r)
	}))
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	got, _ := io.ReadAll(conn)
	conn.Close()
	<-done
	srv.Close()
	w.Close()
	if !strings.HasPrefix(string(got), "HTTP/1.1 101 ") || !strings.HasSuffix(string(got), "hello") {
		t.Errorf("client got %q", got)
	}
	if !strings.Contains(out.String(), `"GET /ws HTTP/1.1" 101 -`) {
		t.Errorf("line %q, want status 101", out.String())
	}
}

// fakeRW is an underlying ResponseWriter that records which of its optional
// methods were reached.
type fakeRW struct {
	header http.Header
	calls  []string
	body   bytes.Buffer
}

func (f *fakeRW) Header() http.Header {
	if f.header == nil {
		f.header = http.Header{}
	}
	return f.header
}
func (f *fakeRW) Write(p []byte) (int, error) {
	f.calls = append(f.calls, "Write")
	return f.body.Write(p)
}
func (f *fakeRW) WriteHeader(int) { f.calls = append(f.calls, "WriteHeader") }
func (f *fakeRW) WriteString(s string) (int, error) {
	f.calls = append(f.calls, "WriteString")
	return f.body.WriteString(s)
}
func (f *fakeRW) ReadFrom(r io.Reader) (int64, error) {
	f.calls = append(f.calls, "ReadFrom")
	return f.body.ReadFrom(r)
}
func (f *fakeRW) Flush() { f.calls = append(f.calls, "Flush") }
func (f *fakeRW) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	f.calls = append(f.calls, "Hijack")
	return nil, nil, nil
}
func (f *fakeRW) SetWriteDeadline(time.Time) error {
	f.calls = append(f.calls, "SetWriteDeadline")
	return nil
}
func (f *fakeRW) EnableFullDuplex() error {
	f.calls = append(f.calls, "EnableFullDuplex")
	return nil
}

// plainRW implements only http.ResponseWriter.
type plainRW struct{ f fakeRW }

func (p *plainRW) Header() http.Header         { return p.f.Header() }
func (p *plainRW) Write(b []byte) (int, error) { return p.f.Write(b) }
func (p *plainRW) WriteHeader(code int)        { p.f.WriteHeader(code) }

func TestWrapperForwardsOptionalInterfaces(t *testing.T) {
	under := &fakeRW{}
	rw := &responseWriter{ResponseWriter: under}
	var w http.ResponseWriter = rw

	// io.Copy from an *os.File-like reader must reach the server's ReadFrom:
	// that is net/http's sendfile path.
	if _, err := io.Copy(w, io.LimitReader(strings.NewReader("0123456789"), 4)); err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "ab")
	w.(http.Flusher).Flush()
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil {
		t.Error(err)
	}
	if err := rc.SetWriteDeadline(time.Now()); err != nil {
		t.Error(err)
	}
	if err := rc.EnableFullDuplex(); err != nil {
		t.Error(err)
	}
	if _, _, err := rc.Hijack(); err != nil {
		t.Error(err)
	}
	want := "[ReadFrom WriteString Flush Flush SetWriteDeadline EnableFullDuplex Hijack]"
	if got := strings.Join(under.calls, " "); "["+got+"]" != want {
		t.Errorf("underlying calls = [%s], want %s", got, want)
	}
	if rw.status != 200 || rw.bytes != 6 || under.body.String() != "0123ab" {
		t.Errorf("status %d, bytes %d, body %q", rw.status, rw.bytes, under.body.String())
	}
	if rw.Unwrap() != under {
		t.Error("Unwrap does not return the underlying writer")
	}

	// Over a writer with none of the optional methods, the wrapper falls back
	// to Write and reports http.ErrNotSupported.
	plain := &plainRW{}
	rw = &responseWriter{ResponseWriter: plain}
	rw.ReadFrom(strings.NewReader("xyz"))
	rw.WriteString("!")
	if _, _, err := rw.Hijack(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Hijack = %v, want ErrNotSupported", err)
	}
	if err := http.NewResponseController(rw).Flush(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Flush = %v, want ErrNotSupported", err)
	}
	if got := strings.Join(plain.f.calls, " "); got != "Write Write" || rw.bytes != 4 {
		t.Errorf("underlying calls %q, bytes %d", got, rw.bytes)
	}
}

// TestConcurrentRequests runs the middleware from many goroutines, for the
// race detector and the buffer pool, and checks every line is whole.
func TestConcurrentRequests(t *testing.T) {
	rec := &recorder{}
	w := NewWriter(rec, WriterOptions{BufferSize: 2048, FlushInterval: time.Millisecond})
	h := Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}), w, FormatCombined)
	const goroutines, requests = 32, 200
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range requests {
				r := httptest.NewRequest("GET", "/"+strings.Repeat("p", (g*requests+i)%300), nil)
				r.Header.Set("User-Agent", "ua")
				h.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	lines := rec.checkWhole(t)
	if len(lines) != goroutines*requests {
		t.Fatalf("%d lines, want %d", len(lines), goroutines*requests)
	}
	for _, l := range lines {
		// The path in the request line and the byte count must agree.
		f := strings.Fields(l)
		if len(f) != 12 || atoi(t, f[9]) != len(f[6]) {
			t.Fatalf("bad line %q", l)
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// TestJSONLineTLS: over TLS the json line says the version and cipher
// (mod_ssl's SSL_PROTOCOL and SSL_CIPHER) and, with a client certificate,
// its subject (SSL_CLIENT_S_DN); over plain HTTP none of them, and the
// other formats never.
func TestJSONLineTLS(t *testing.T) {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "alice", Organization: []string{"Example \"Q\""}}}
	for _, tt := range []struct {
		name string
		tls  *tls.ConnectionState
		want map[string]any
	}{
		{"plain", nil, map[string]any{}},
		{"no certificate", &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256},
			map[string]any{"tls_version": "TLSv1.3", "tls_cipher": "TLS_AES_128_GCM_SHA256"}},
		{"client certificate", &tls.ConnectionState{Version: tls.VersionTLS12, CipherSuite: tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}},
			map[string]any{"tls_version": "TLSv1.2", "tls_cipher": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "tls_client_s_dn": `CN=alice,O=Example \"Q\"`}},
	} {
		r := apacheRequest()
		r.TLS = tt.tls
		var m map[string]any
		line := serveOne(t, FormatJSON, gif, r)
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%s: %q: %v", tt.name, line, err)
		}
		for _, k := range []string{"tls_version", "tls_cipher", "tls_client_s_dn"} {
			if got, want := m[k], tt.want[k]; got != want {
				t.Errorf("%s: %s = %#v, want %#v", tt.name, k, got, want)
			}
		}
		if line := serveOne(t, FormatCombined, gif, r); strings.Contains(line, "TLS") || strings.Contains(line, "alice") {
			t.Errorf("%s: combined line %q has TLS fields", tt.name, line)
		}
	}
}
