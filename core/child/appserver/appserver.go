// Package appserver runs the app server a phased child owns, as Passenger
// and mod_fcgid own their app processes: one per child, started after the
// child's child-init hooks and before it accepts, told where to listen (a
// unix socket in a folder the child owns, or a free loopback port), waited
// for until it answers, watched while the child serves, and stopped once
// the child has drained (its stop signal, a bound, then SIGKILL).
//
// The app server runs in a process group of its own and dies with its
// child (the parent-death signal). Its stop signal goes to its main process
// alone, as systemd's KillMode=mixed does: a preforking server (gunicorn,
// unicorn, Starman) stops its own workers its own way, and a worker that got
// the signal itself would not (Starman's exit at once on QUIT, cutting the
// request they serve). What is left of its group once it has exited, or
// once the stop timeout has passed, is killed. Its stdout and stderr go to the
// child's error log a line at a time, and the last lines of its stderr are
// kept to say why it died.
package appserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/phasedhq/phased/internal/sockconn"
)

// tailLines is how many of an app server's last stderr lines are kept.
const tailLines = 20

// maxLine is the longest piece of an app server's output one log record
// takes: a longer line is logged in pieces of that size.
const maxLine = 64 << 10

// Options says how to run one app server.
type Options struct {
	// Command is its argv, with placeholders: {socket}, {port},
	// {threads}, {slot}, {generation}.
	Command []string
	// Env is its whole environment, to which Start adds PORT (listen
	// port) or PHASED_APP_SOCKET (listen socket), PHASED_SLOT,
	// PHASED_GENERATION and PHASED_THREADS.
	Env []string
	// Dir is its working directory.
	Dir string
	// Listen is "socket" (a unix socket in SocketDir) or "port" (a free
	// port on 127.0.0.1).
	Listen string
	// SocketDir is the folder the child owns for the socket.
	SocketDir string
	// Threads, Slot and Generation are the child's, for the placeholders.
	Threads, Slot, Generation int
	// HealthCheck is a path that must answer 2xx before Start returns; ""
	// means the socket accepting is enough.
	HealthCheck string
	// StartTimeout bounds Start; StopTimeout bounds Stop's wait after
	// StopSignal, before SIGKILL.
	StartTimeout, StopTimeout time.Duration
	// StopSignal is what Stop sends first.
	StopSignal syscall.Signal
	// Log is the child's error log; the app server's output is written to
	// it, tagged with its pid.
	Log *slog.Logger
}

// Server is a running app server.
type Server struct {
	o        Options
	cmd      *exec.Cmd
	network  string // "unix" or "tcp"
	addr     string
	unixAddr *sockconn.UnixAddr // addr's, for "unix"
	exited   chan struct{}
	output   sync.WaitGroup // the output copiers, done before exited closes
	mu       sync.Mutex
	tail     []string // the last stderr lines
	stopping bool
}

// Start starts the app server and returns once it answers: its address
// accepts a connection and, with a health check, answers it with 2xx. It
// fails, naming the app.* key at fault, when the program cannot start,
// exits first, or does not answer within the start timeout; then nothing
// is left running.
func Start(ctx context.Context, o Options) (*Server, error) {
	if len(o.Command) == 0 {
		return nil, errors.New("app.command: empty")
	}
	s := &Server{o: o, exited: make(chan struct{})}
	port := 0
	switch o.Listen {
	case "port":
		var err error
		if port, err = freePort(); err != nil {
			return nil, fmt.Errorf("app.listen: finding a free port: %w", err)
		}
		s.network, s.addr = "tcp", "127.0.0.1:"+strconv.Itoa(port)
	default:
		s.network, s.addr = "unix", filepath.Join(o.SocketDir, "app.sock")
		var err error
		if s.unixAddr, err = sockconn.NewUnixAddr(s.addr); err != nil {
			return nil, fmt.Errorf("app server socket: %w", err)
		}
		os.Remove(s.addr) // a previous run's
	}
	argv := make([]string, len(o.Command))
	for i, a := range o.Command {
		argv[i] = strings.NewReplacer("{socket}", s.addr, "{port}", strconv.Itoa(port), "{threads}", strconv.Itoa(o.Threads),
			"{slot}", strconv.Itoa(o.Slot), "{generation}", strconv.Itoa(o.Generation)).Replace(a)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = o.Dir
	cmd.Env = append(append([]string(nil), o.Env...),
		"PHASED_SLOT="+strconv.Itoa(o.Slot), "PHASED_GENERATION="+strconv.Itoa(o.Generation), "PHASED_THREADS="+strconv.Itoa(o.Threads))
	if port != 0 {
		cmd.Env = append(cmd.Env, "PORT="+strconv.Itoa(port))
	} else {
		cmd.Env = append(cmd.Env, "PHASED_APP_SOCKET="+s.addr)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Pipes of our own, not exec's: a process the app server left behind
	// holding them must not keep Wait from returning.
	var outR, outW, errR, errW *os.File
	outR, outW, err := os.Pipe()
	if err == nil {
		if errR, errW, err = os.Pipe(); err != nil {
			outR.Close()
			outW.Close()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("app.command: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("app.command: starting %s: %w", argv[0], err)
	}
	s.cmd = cmd
	s.output.Add(2)
	go s.copyOutput(outR, "stdout")
	go s.copyOutput(errR, "stderr")
	go func() {
		cmd.Wait()
		// The last lines are logged before anyone hears of the exit, unless
		// something the app server left behind keeps its output open.
		done := make(chan struct{})
		go func() { s.output.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(time.Second):
			outR.Close()
			errR.Close()
		}
		close(s.exited)
	}()
	o.Log.Info("app server starting", "app_pid", s.PID(), "command", strings.Join(argv, " "), "listen", s.network+":"+s.addr)
	if err := s.waitReady(ctx); err != nil {
		s.kill()
		return nil, err
	}
	o.Log.Info("app server ready", "app_pid", s.PID(), "listen", s.network+":"+s.addr)
	return s, nil
}

// freePort returns a loopback port nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// copyOutput writes the app server's output to the log a line at a time
// (a very long one in pieces), and keeps stderr's last lines. It reads until
// the app server closes its end: were it to stop, the app server would die
// of a broken pipe at its next write.
func (s *Server) copyOutput(r io.ReadCloser, stream string) {
	defer s.output.Done()
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4<<10), 2*maxLine)
	sc.Split(splitLines)
	pid := s.PID()
	for sc.Scan() {
		line := sc.Text()
		s.o.Log.Info(line, "app_pid", pid, "stream", stream)
		if stream == "stderr" {
			s.mu.Lock()
			s.tail = append(s.tail, line)
			if len(s.tail) > tailLines {
				s.tail = s.tail[len(s.tail)-tailLines:]
			}
			s.mu.Unlock()
		}
	}
}

// splitLines is bufio.ScanLines that cuts a line longer than maxLine into
// pieces of maxLine bytes.
func splitLines(data []byte, atEOF bool) (int, []byte, error) {
	n, line, err := bufio.ScanLines(data, atEOF)
	if n == 0 && err == nil && len(data) >= maxLine {
		return maxLine, data[:maxLine], nil
	}
	return n, line, err
}

// waitReady waits until the app server answers, or fails.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.o.StartTimeout)
	defer cancel()
	where := s.network + ":" + s.addr
	wait := 10 * time.Millisecond
	var last error
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("app.command: the app server exited before it answered on %s: %s%s", where, s.ExitStatus(), s.lastOutput())
		case <-ctx.Done():
			var unhealthy *healthError
			switch {
			case errors.As(last, &unhealthy):
				return fmt.Errorf("app.health_check: GET %s on %s answered %s, not 2xx, until app.start_timeout (%s) passed%s",
					s.o.HealthCheck, where, unhealthy.status, s.o.StartTimeout, s.lastOutput())
			case errors.Is(ctx.Err(), context.DeadlineExceeded):
				return fmt.Errorf("app.start_timeout: the app server did not answer on %s within %s (last: %v)%s", where, s.o.StartTimeout, last, s.lastOutput())
			}
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
		if last = s.probe(ctx); last == nil {
			return nil
		}
	}
}

// probe is one readiness check: a connection, and the health check's 2xx.
func (s *Server) probe(ctx context.Context) error {
	c, err := s.Dial(ctx)
	if err != nil {
		return err
	}
	if s.o.HealthCheck == "" {
		c.Close()
		return nil
	}
	defer c.Close()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if d, ok := pctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	req, _ := http.NewRequestWithContext(pctx, "GET", "http://app"+s.o.HealthCheck, nil)
	req.Header.Set("User-Agent", "phased health check")
	req.Close = true
	if err := req.Write(c); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &healthError{path: s.o.HealthCheck, status: resp.Status}
	}
	return nil
}

// healthError is a health check that answered, but not 2xx.
type healthError struct{ path, status string }

func (e *healthError) Error() string {
	return fmt.Sprintf("app.health_check: GET %s answered %s", e.path, e.status)
}

// lastOutput is the app server's last stderr lines, for an error message.
func (s *Server) lastOutput() string {
	t := s.Tail()
	if len(t) == 0 {
		return ""
	}
	return "; its last output: " + strings.Join(t, " | ")
}

// Dial connects to the app server. A unix socket is dialed with raw
// system calls (sockconn.UnixAddr.Dial: a child that forwards each
// request on a new connection, to an app that closes it after the answer,
// makes one per request).
func (s *Server) Dial(ctx context.Context) (net.Conn, error) {
	if s.unixAddr != nil {
		if err := ctx.Err(); err != nil {
			return nil, &net.OpError{Op: "dial", Net: "unix", Addr: &net.UnixAddr{Name: s.addr, Net: "unix"}, Err: err}
		}
		c, err := s.unixAddr.Dial()
		if err != nil {
			return nil, err // not a nil *sockconn.Conn in a net.Conn
		}
		return c, nil
	}
	var d net.Dialer
	return d.DialContext(ctx, s.network, s.addr)
}

// Exchange connects to the app server for one request and its answer
// outside the netpoller (sockconn.Exchange); nil for an app on a TCP port.
func (s *Server) Exchange() (*sockconn.Exchange, error) {
	if s.unixAddr == nil {
		return nil, nil
	}
	return s.unixAddr.Exchange()
}

// Network and Addr are where the app server listens: "unix" and a socket
// path, or "tcp" and 127.0.0.1:port.
func (s *Server) Network() string { return s.network }

// Addr is where the app server listens (see Network).
func (s *Server) Addr() string { return s.addr }

// PID is the app server's pid.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Exited is closed when the app server has exited.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// Stopping reports whether Stop was called: an exit then is expected.
func (s *Server) Stopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// ExitStatus says how the app server ended ("exit status 1", "killed by
// signal terminated"), or "running".
func (s *Server) ExitStatus() string {
	select {
	case <-s.exited:
	default:
		return "running"
	}
	st := s.cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by signal " + ws.Signal().String()
	}
	return "exit status " + strconv.Itoa(st.ExitCode())
}

// Tail returns the app server's last stderr lines.
func (s *Server) Tail() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.tail...)
}

// Stop sends the stop signal to the app server's main process, waits up
// to the stop timeout for it to exit, then kills its process group: the
// processes it left behind, or all of them when it did not stop in time. It
// returns when the app server has exited.
func (s *Server) Stop() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	select {
	case <-s.exited:
		return
	default:
	}
	start := time.Now()
	syscall.Kill(s.PID(), s.o.StopSignal)
	select {
	case <-s.exited:
		s.o.Log.Info("app server stopped", "app_pid", s.PID(), "signal", s.o.StopSignal.String(), "status", s.ExitStatus(),
			"took", time.Since(start).Round(time.Millisecond).String())
		if syscall.Kill(-s.PID(), syscall.SIGKILL) == nil {
			s.o.Log.Warn("the app server left processes behind in its process group; killed them", "app_pid", s.PID())
		}
	case <-time.After(s.o.StopTimeout):
		s.o.Log.Warn("app server did not stop in time; killing it", "app_pid", s.PID(), "signal", s.o.StopSignal.String(),
			"after", s.o.StopTimeout.String())
		s.kill()
	}
	if s.network == "unix" {
		os.Remove(s.addr)
	}
}

// kill ends the app server's process group at once and waits for it.
func (s *Server) kill() {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	syscall.Kill(-s.PID(), syscall.SIGKILL)
	<-s.exited
}
