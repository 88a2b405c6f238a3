// Package control is the master's control socket: the way `phased -k VERB`
// and `phased status` talk to a running master and wait for the outcome.
//
// The socket is a unix stream socket beside the pid file, mode 0600. Only root
// and the master's own user may use it (checked with SO_PEERCRED on every
// connection). A client sends one JSON request line and reads one JSON
// response line; the master answers when the operation has finished, so
// `phased -k graceful` can exit 1 with the error when the new configuration
// pass failed.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Request is one command for the master.
type Request struct {
	// Cmd is the verb: graceful, restart, graceful-stop, stop, recycle, status, ping.
	Cmd string `json:"cmd"`
}

// Response is the master's answer.
type Response struct {
	// OK reports whether the command succeeded.
	OK bool `json:"ok"`
	// Error is the failure, when OK is false.
	Error string `json:"error,omitempty"`
	// Message is a human-readable outcome ("graceful restart done: generation 3").
	Message string `json:"message,omitempty"`
	// Data carries the command's structured result (status).
	Data json.RawMessage `json:"data,omitempty"`
}

// ErrNotRunning is returned by Call when no master listens on the socket.
var ErrNotRunning = errors.New("phased is not running")

// Handler answers one request. ctx is cancelled when the client goes away.
type Handler func(ctx context.Context, req Request) Response

// Server serves the control socket.
type Server struct {
	path string
	ln   *net.UnixListener
	log  *slog.Logger
	wg   sync.WaitGroup
}

// Listen creates the socket at path, replacing a leftover socket file (the
// caller holds the pid file lock, so no other master can be using it).
func Listen(path string, log *slog.Logger) (*Server, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		os.Remove(path)
	}
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &Server{path: path, ln: ln, log: log}, nil
}

// Path returns the socket's path.
func (s *Server) Path() string { return s.path }

// Serve accepts connections until Close, calling h for each request.
func (s *Server) Serve(h Handler) {
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.serveConn(c, h)
		}()
	}
}

func (s *Server) serveConn(c *net.UnixConn, h Handler) {
	if err := allowed(c); err != nil {
		s.log.Warn("control socket: refused a client", "err", err)
		json.NewEncoder(c).Encode(Response{Error: err.Error()})
		return
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return
	}
	c.SetReadDeadline(time.Time{})
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		json.NewEncoder(c).Encode(Response{Error: "bad request: " + err.Error()})
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	resp := h(ctx, req)
	json.NewEncoder(c).Encode(resp)
}

func allowed(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cerr != nil {
		return cerr
	}
	if cred.Uid != 0 && int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("uid %d may not control this master (root or uid %d only)", cred.Uid, os.Getuid())
	}
	return nil
}

// Close stops accepting, removes the socket file and waits for requests in
// flight to be answered.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

// Call sends req to the master at path and waits up to timeout for the answer.
// A zero timeout waits forever.
func Call(path string, req Request, timeout time.Duration) (Response, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED) {
			return Response{}, fmt.Errorf("%w (no master at control socket %s)", ErrNotRunning, path)
		}
		return Response{}, fmt.Errorf("control socket %s: %w", path, err)
	}
	defer c.Close()
	if timeout > 0 {
		c.SetDeadline(time.Now().Add(timeout))
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Response{}, fmt.Errorf("control socket %s: %w", path, err)
	}
	var resp Response
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&resp); err != nil {
		return Response{}, fmt.Errorf("control socket %s: no answer to %q: %w", path, req.Cmd, err)
	}
	return resp, nil
}
