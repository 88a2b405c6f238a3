// Command bare is the single-process baseline of bench/mpm: one Go process
// serving a folder, with no master, no children, no scoreboard and no
// logging.
//
//	go run ./bench/mpm/bare -addr 127.0.0.1:18080 -root /tmp/www [-handler fileserver|static|memory]
//
// -handler fileserver (the default) serves with net/http's http.FileServer;
// -handler static serves with phased's own static handler (core/child/static, as
// phased's children do), so that the difference to a phased MPM is the cost
// of the MPM alone; -handler memory reads the regular files at the top of
// -root once at start and answers GET /NAME with their bytes from memory (a
// trivial handler: Content-Type and Content-Length, one Write), the "bare
// in-memory Go handler" of bench/compare. It stops on SIGTERM or SIGINT.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"mime"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/phasedhq/phased/core/child/static"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "address to listen on")
	root := flag.String("root", ".", "folder to serve")
	kind := flag.String("handler", "fileserver", "fileserver (net/http's http.FileServer), static (phased's core/child/static) or memory (the files' bytes from memory)")
	flag.Parse()

	var h http.Handler
	switch *kind {
	case "fileserver":
		h = http.FileServer(http.Dir(*root))
	case "static":
		h = static.New(static.Options{Root: *root})
	case "memory":
		m, err := loadMemory(*root)
		if err != nil {
			log.Fatal(err)
		}
		h = m
	default:
		log.Fatalf("-handler: %q is not fileserver, static or memory", *kind)
	}
	srv := &http.Server{
		Addr:              *addr,
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second, // phased's default timeouts
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		IdleTimeout:       5 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// memFile is one file held in memory, with its precomputed headers.
type memFile struct {
	body   []byte
	ctype  []string
	length []string
}

// memory serves the regular files at the top of a folder from memory.
type memory map[string]memFile

func loadMemory(root string) (memory, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	m := memory{}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, e.Name()))
		if err != nil {
			return nil, err
		}
		ct := mime.TypeByExtension(filepath.Ext(e.Name()))
		if ct == "" {
			ct = "application/octet-stream"
		}
		m["/"+e.Name()] = memFile{body: b, ctype: []string{ct}, length: []string{strconv.Itoa(len(b))}}
	}
	return m, nil
}

func (m memory) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, ok := m[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	h := w.Header()
	h["Content-Type"] = f.ctype
	h["Content-Length"] = f.length
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(f.body)
}
