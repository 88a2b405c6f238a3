package handover

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/phasedhq/phased/core/listen"
	"github.com/phasedhq/phased/internal/contract"
)

// Version is the version of the upgrade hand-over this build speaks; a new
// master refuses a State of another version, naming both, and the old
// master keeps serving.
const Version = 1

// envUpgrade names the descriptor of the State a master started by a binary
// upgrade inherits.
const envUpgrade = "PHASED_INTERNAL_UPGRADE"

// goAheadBound is how long a new master waits for the old master's
// go-ahead after it reported ready.
const goAheadBound = 10 * time.Second

// The descriptor names of a hand-over, besides the listeners.
const (
	fileReport   = "report"
	fileGoAhead  = "go-ahead"
	fileCounters = "counters"
	fileTickets  = "tickets"
)

// Segments are the shared memory segments an old master hands over; a nil
// one is not.
type Segments struct {
	// Counters is the master's running totals: the new master's go on.
	Counters *os.File
	// Tickets is the TLS session ticket keys: the new master's children
	// decrypt the tickets the old one's made, so sessions resume across
	// the upgrade.
	Tickets *os.File
}

// State is what the old master of a binary upgrade hands the new one
// besides its sockets.
type State struct {
	// Version is the hand-over's version (see Version).
	Version int `json:"version"`
	// PID is the old master's pid.
	PID int `json:"pid"`
	// Generation is the old master's newest generation: the new master's
	// first is the next.
	Generation int `json:"generation"`
	// Started is when the service started: its uptime goes on.
	Started time.Time `json:"started"`
	// Activated reports whether the sockets came from systemd's socket
	// activation: they stay the new master's, whatever the listen key says.
	Activated bool `json:"activated"`
	// Listeners are the sockets, in order, by descriptor name.
	Listeners []Listener `json:"listeners"`
	// Children is the old master's children, as its status shows them
	// (the master's own JSON): the new master shows them until they are
	// gone.
	Children json.RawMessage `json:"children,omitempty"`
	// Files maps descriptor names to their numbers in the new master.
	Files map[string]int `json:"files"`
}

// Listener is one socket handed over.
type Listener struct {
	// Addr is its address as configured; Name its LISTEN_FDNAMES name.
	Addr string `json:"addr"`
	Name string `json:"name,omitempty"`
	// File names its descriptor.
	File string `json:"file"`
}

// Upgrade is a binary upgrade in progress, seen from the old master.
type Upgrade struct {
	cmd *exec.Cmd
	goW *os.File
}

// Start starts exe with args and env as the new master of a binary
// upgrade, handing it lns, seg and st. report is called once, from another goroutine, with nil
// when the new master serves and waits for Proceed, or with why it will
// not (it failed, or exited first); then the process is reaped once it
// exits, which after a success is after the old master is gone.
func Start(exe string, args, env []string, lns []*listen.Listener, seg Segments, st State, stderr io.Writer, report func(error)) (*Upgrade, error) {
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	goR, goW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		readyW.Close()
		return nil, err
	}
	defer readyW.Close()
	defer goR.Close()
	var files contract.Files
	st.Version, st.Listeners = Version, nil
	for i, l := range lns {
		st.Listeners = append(st.Listeners, Listener{Addr: l.Addr, Name: l.Name, File: files.Add("listener/"+strconv.Itoa(i), l.File)})
	}
	files.Add(fileReport, readyW)
	files.Add(fileGoAhead, goR)
	if seg.Counters != nil {
		files.Add(fileCounters, seg.Counters)
	}
	if seg.Tickets != nil {
		files.Add(fileTickets, seg.Tickets)
	}
	st.Files = files.Names()
	b, err := json.Marshal(st)
	if err == nil {
		var enc *contract.Encoded
		if enc, err = contract.Pack(envUpgrade, b, &files); err == nil {
			defer enc.Close()
			cmd := exec.Command(exe, args...)
			cmd.Env = append(withoutInternal(env), enc.Env)
			cmd.ExtraFiles = enc.ExtraFiles
			cmd.Stdout, cmd.Stderr = stderr, stderr
			// No parent-death signal: the new master outlives this one.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err = cmd.Start(); err == nil {
				go func() {
					line, _ := bufio.NewReader(readyR).ReadString('\n')
					readyR.Close()
					switch line = strings.TrimSpace(line); {
					case line == "ready":
						report(nil)
					case strings.HasPrefix(line, "error: "):
						report(errors.New(strings.TrimPrefix(line, "error: ")))
					default:
						report(errors.New("the new master exited before it was ready"))
					}
					cmd.Wait() // reap it if it fails; after a success it outlives us
				}()
				return &Upgrade{cmd: cmd, goW: goW}, nil
			}
			err = fmt.Errorf("starting %s: %w", exe, err)
		}
	}
	readyR.Close()
	goW.Close()
	return nil, err
}

// withoutInternal is env without phased's internal variables: a master's
// own hand-over must not reach the next.
func withoutInternal(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "PHASED_INTERNAL_") {
			out = append(out, kv)
		}
	}
	return out
}

// PID is the new master's pid.
func (u *Upgrade) PID() int { return u.cmd.Process.Pid }

// Proceed sends the new master its go-ahead: the old master has let go of
// the pid file and the control socket.
func (u *Upgrade) Proceed() error {
	_, err := fmt.Fprintln(u.goW, "go")
	u.goW.Close()
	return err
}

// Abort ends an upgrade whose new master failed: it is killed if it still
// runs.
func (u *Upgrade) Abort() {
	u.goW.Close()
	u.cmd.Process.Kill()
}

// Adopted is a binary upgrade seen from the new master.
type Adopted struct {
	// Listeners are the sockets handed over, in order.
	Listeners []*listen.Listener
	// State is what the old master handed over.
	State State
	// Segments are the old master's segments (nil ones: start anew).
	Segments

	report  *os.File
	goAhead *os.File
}

// Adopt takes over what an old master handed over, or returns nil when
// this master was not started by a binary upgrade. An error (a hand-over
// of another version, a missing descriptor) is reported to the old master
// too, which keeps serving.
func Adopt() (*Adopted, error) {
	b, err := contract.Unpack(envUpgrade)
	if errors.Is(err, contract.ErrNotChild) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("binary upgrade: %w", err)
	}
	a := &Adopted{}
	var v struct{ Version int }
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("binary upgrade: the old master's state: %w", err)
	}
	if err := json.Unmarshal(b, &a.State); err != nil {
		return nil, fmt.Errorf("binary upgrade: the old master's state: %w", err)
	}
	// The report pipe first: every later error can reach the old master.
	if a.report, err = contract.OpenFile(a.State.Files, fileReport); err != nil {
		return nil, fmt.Errorf("binary upgrade: %w", err)
	}
	fail := func(err error) (*Adopted, error) {
		err = fmt.Errorf("binary upgrade: %w", err)
		a.Fail(err)
		for _, l := range a.Listeners {
			l.Close()
		}
		return nil, err
	}
	if v.Version != Version {
		return fail(fmt.Errorf("hand-over version %d from the old master, but this binary speaks version %d", v.Version, Version))
	}
	if fd, ok := a.State.Files[fileGoAhead]; ok {
		syscall.SetNonblock(fd, true) // pollable: the wait for it is bounded
	}
	if a.goAhead, err = contract.OpenFile(a.State.Files, fileGoAhead); err != nil {
		return fail(err)
	}
	for _, l := range a.State.Listeners {
		f, err := contract.OpenFile(a.State.Files, l.File)
		if err != nil {
			return fail(err)
		}
		ln, err := listen.Adopt(l.Addr, f)
		if err != nil {
			return fail(err)
		}
		ln.Name = l.Name
		a.Listeners = append(a.Listeners, ln)
	}
	for name, f := range map[string]**os.File{fileCounters: &a.Counters, fileTickets: &a.Tickets} {
		if _, ok := a.State.Files[name]; ok {
			if *f, err = contract.OpenFile(a.State.Files, name); err != nil {
				return fail(err)
			}
		}
	}
	return a, nil
}

// Fail tells the old master that this one will not serve, and why; it
// keeps serving.
func (a *Adopted) Fail(err error) {
	if a.report != nil {
		fmt.Fprintf(a.report, "error: %v\n", err)
		a.report.Close()
		a.report = nil
	}
}

// Handover tells the old master that this one serves and waits (bounded)
// for its go-ahead: the old master has let go of the pid file and the
// control socket, which this one takes next.
func (a *Adopted) Handover() error {
	if a.report == nil {
		return errors.New("already reported")
	}
	_, err := fmt.Fprintln(a.report, "ready")
	a.report.Close()
	a.report = nil
	if err != nil {
		return fmt.Errorf("telling the old master: %w", err)
	}
	a.goAhead.SetReadDeadline(time.Now().Add(goAheadBound))
	line, err := bufio.NewReader(a.goAhead).ReadString('\n')
	a.goAhead.Close()
	if strings.TrimSpace(line) != "go" {
		return fmt.Errorf("the old master did not hand over: %q %v", line, err)
	}
	return nil
}
