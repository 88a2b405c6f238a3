// Command herdchild is one prefork child of bench/herd: it serves the
// listening socket it inherits as descriptor 3 one connection at a time
// (accept, read one request, write a tiny HTTP/1.0 response, close) until
// SIGTERM, then prints its counters.
//
// It lives here, not in bench/herd, because it links acceptmutex, which as
// an sdk/internal package can only be imported from inside sdk/. bench/herd
// builds it and runs it; it is not meant to be run by hand.
//
// Environment:
//
//	HERD_MODE  netpoller | epoll | exclusive | wakeone | mutex
//	HERD_LOCK  the lock file (mutex mode)
//
// Modes:
//
//	netpoller  net.FileListener: Go's netpoller, every child woken (no counters)
//	epoll      what the netpoller does, by hand so that failures can be
//	           counted: an epoll instance of its own with the socket registered
//	           EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET, without EPOLLEXCLUSIVE;
//	           accept4 until EAGAIN, then epoll_wait
//	exclusive  the same with EPOLLIN|EPOLLET|EPOLLEXCLUSIVE (for reference:
//	           the kernel wakes one waiter)
//	wakeone    acceptmutex.ListenWakeOne
//	mutex      acceptmutex.Listen
//
// Protocol on stdout: "ready" once serving, then on SIGTERM
// "stats ACCEPTED FAILED WAKEUPS" ("-" where a mode cannot count).
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/phasedhq/phased/internal/acceptmutex"
)

// socketFD is the inherited listening socket.
const socketFD = 3

const response = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"

type counters struct {
	accepted, failed, wakeups int64 // -1: not counted
}

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	var c counters
	var err error
	switch mode := os.Getenv("HERD_MODE"); mode {
	case "netpoller":
		c, err = runNetpoller(stop)
	case "epoll":
		c, err = runEpoll(stop, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET)
	case "exclusive":
		c, err = runEpoll(stop, unix.EPOLLIN|unix.EPOLLET|unix.EPOLLEXCLUSIVE)
	case "mutex":
		c, err = runMutex(stop, os.Getenv("HERD_LOCK"))
	case "wakeone":
		c, err = runMutex(stop, "")
	default:
		err = fmt.Errorf("unknown HERD_MODE %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "herdchild:", err)
		os.Exit(1)
	}
	fmt.Printf("stats %s %s %s\n", count(c.accepted), count(c.failed), count(c.wakeups))
}

func count(n int64) string {
	if n < 0 {
		return "-"
	}
	return strconv.FormatInt(n, 10)
}

func ready() { fmt.Println("ready") }

// serve answers one request on c and closes it.
func serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n := 0
	for {
		m, err := c.Read(buf[n:])
		n += m
		if indexEnd(buf[:n]) >= 0 {
			break
		}
		if err != nil || n == len(buf) {
			return
		}
	}
	io.WriteString(c, response)
}

func indexEnd(b []byte) int {
	for i := 0; i+3 < len(b); i++ {
		if b[i] == '\r' && b[i+1] == '\n' && b[i+2] == '\r' && b[i+3] == '\n' {
			return i
		}
	}
	return -1
}

func runNetpoller(stop <-chan os.Signal) (counters, error) {
	f := os.NewFile(socketFD, "listener")
	ln, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return counters{}, err
	}
	go func() { <-stop; ln.Close() }()
	ready()
	c := counters{failed: -1, wakeups: -1}
	for {
		conn, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return c, nil
		}
		if err != nil {
			return c, err
		}
		c.accepted++
		serve(conn)
	}
}

func runEpoll(stop <-chan os.Signal, events uint32) (counters, error) {
	var c counters
	if err := unix.SetNonblock(socketFD, true); err != nil {
		return c, err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return c, os.NewSyscallError("epoll_create1", err)
	}
	defer unix.Close(ep)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, socketFD, &unix.EpollEvent{Events: events, Fd: socketFD}); err != nil {
		return c, os.NewSyscallError("epoll_ctl", err)
	}
	ready()
	evs := make([]unix.EpollEvent, 1)
	woke := false
	for {
		select {
		case <-stop:
			return c, nil
		default:
		}
		nfd, _, err := syscall.Accept4(socketFD, syscall.SOCK_CLOEXEC)
		switch err {
		case nil:
			c.accepted++
			woke = false
			f := os.NewFile(uintptr(nfd), "conn")
			conn, err := net.FileConn(f)
			f.Close()
			if err != nil {
				return c, err
			}
			serve(conn)
		case syscall.EAGAIN:
			if woke {
				c.failed++
			}
			n, err := unix.EpollWait(ep, evs, 100)
			if err != nil && err != unix.EINTR {
				return c, os.NewSyscallError("epoll_wait", err)
			}
			woke = n > 0
			if woke {
				c.wakeups++
			}
		case syscall.EINTR, syscall.ECONNABORTED:
		default:
			return c, os.NewSyscallError("accept4", err)
		}
	}
}

// runMutex serves through acceptmutex.Listen on lockPath, or through
// acceptmutex.ListenWakeOne when lockPath is "".
func runMutex(stop <-chan os.Signal, lockPath string) (counters, error) {
	f := os.NewFile(socketFD, "listener")
	var ln *acceptmutex.Listener
	var err error
	if lockPath == "" {
		ln, err = acceptmutex.ListenWakeOne(f)
	} else {
		ln, err = acceptmutex.Listen(f, lockPath)
	}
	f.Close()
	if err != nil {
		return counters{}, err
	}
	go func() { <-stop; ln.Close() }()
	ready()
	for {
		conn, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			break
		}
		if err != nil {
			return counters{}, err
		}
		serve(conn)
	}
	st := ln.Stats()
	return counters{accepted: int64(st.Accepted), failed: int64(st.Failed), wakeups: int64(st.Wakeups)}, nil
}
