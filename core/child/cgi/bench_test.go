package cgi

import (
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/phasedhq/phased/core/child/internal/testkit"
)

// BenchmarkHello runs a shell hello-world through the handler: a fork, the
// launcher (this test binary started again) and the script's exec.
// BenchmarkHelloBare runs the same script with os/exec alone, the cost
// without the launcher.
func BenchmarkHello(b *testing.B) {
	dir := b.TempDir()
	testkit.Tree(b, dir, map[string]string{"hello.sh": "exec:#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello'\n"})
	h, err := New(Options{Aliases: []Alias{{Prefix: "/cgi-bin/", Dir: dir}}})
	if err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/cgi-bin/hello.sh", nil)
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK || w.Body.String() != "hello" {
			b.Fatalf("%d %q", w.Code, w.Body)
		}
	}
}

func BenchmarkHelloBare(b *testing.B) {
	dir := b.TempDir()
	testkit.Tree(b, dir, map[string]string{"hello.sh": "exec:#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\nhello'\n"})
	for b.Loop() {
		if err := exec.Command(filepath.Join(dir, "hello.sh")).Run(); err != nil {
			b.Fatal(err)
		}
	}
}
