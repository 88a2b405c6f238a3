package testkit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// ServeUnix listens on a unix socket named name in the test's folder and
// runs serve with the listener in a goroutine; at the test's end it closes
// the listener and waits for serve to return. It returns the socket's path.
func ServeUnix(t testing.TB, name string, serve func(net.Listener)) string {
	t.Helper()
	addr := filepath.Join(t.TempDir(), name)
	ln, err := net.Listen("unix", addr)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve(ln)
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return addr
}

// ReadTicks reads n lines from r, the i-th of which must be
// fmt.Sprintf(format, i), and calls next(i) after each: a script that
// waits for next before it writes its next line proves that each line
// reached the client while the script ran.
func ReadTicks(t testing.TB, r io.Reader, format string, n int, next func(i int)) {
	t.Helper()
	br := bufio.NewReader(r)
	for i := range n {
		line, err := br.ReadString('\n')
		if want := fmt.Sprintf(format, i); err != nil || line != want {
			t.Fatalf("line %d: %q, %v; want %q", i, line, err, want)
		}
		next(i)
	}
}

// GoAhead returns a function that makes the file "go<i>" in folder dir,
// which a test script waits for.
func GoAhead(t testing.TB, dir string) func(i int) {
	return func(i int) {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprint("go", i)), nil, 0o644); err != nil {
			t.Error(err)
		}
	}
}
