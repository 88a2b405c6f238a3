package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/phasedhq/phased/sdk/hook"
)

// SettingIndex is the plugin's one setting (its hook entry's
// `settings: {index: PATH}`): the index file's path; unset, it is
// warmup.index beside document_root. A relative path is taken from
// server_root.
const SettingIndex = "index"

// Warmup is the hook plugin: a Configurer, a PostConfigurer and a
// ChildWatcher. It keeps no state between calls: each phase reads what it
// needs from its PhaseRequest, so nothing leaks from one pass to the next.
type Warmup struct {
	log *slog.Logger
}

// Interface guards: the phases and events Describe announces.
var (
	_ hook.Hook           = (*Warmup)(nil)
	_ hook.Configurer     = (*Warmup)(nil)
	_ hook.PostConfigurer = (*Warmup)(nil)
	_ hook.ChildWatcher   = (*Warmup)(nil)
)

// New returns the plugin, logging through the plugin's logger (hook.Logger).
func New() *Warmup {
	return &Warmup{log: hook.Logger()}
}

// Describe checks the plugin's settings and announces the configure and
// post-config phases and child events. Under plugin protocol 1 the master
// sends no child events; the plugin says so once, in the log.
func (w *Warmup) Describe(_ context.Context, req *hook.DescribeRequest) (*hook.DescribeResponse, error) {
	if _, err := indexSetting(req.Settings); err != nil {
		return nil, err
	}
	if req.Protocol < 2 {
		w.log.Info("the master speaks plugin protocol 1: children will not be logged", "protocol", req.Protocol)
	}
	resp := hook.Implemented(w)
	resp.Name = "warmup"
	return resp, nil
}

// indexSetting reads the settings: index, a non-empty string, is the only
// key. A wrong one is a *hook.SettingError, which the master reports as
// hooks[i].settings.KEY.
func indexSetting(settings map[string]any) (string, error) {
	index := ""
	for key, v := range settings {
		s, ok := v.(string)
		if key != SettingIndex || !ok || s == "" {
			return "", &hook.SettingError{Key: key, Msg: fmt.Sprintf("the one setting is index, the index file's path; got %v", v)}
		}
		index = s
	}
	return index, nil
}

// site is the part of the effective configuration the plugin reads.
type site struct {
	ServerRoot   string `json:"server_root"`
	DocumentRoot string `json:"document_root"`
}

// readSite decodes the effective configuration. document_root is absolute
// in what the master sends; a relative one is taken from server_root.
func readSite(req *hook.PhaseRequest) (site, error) {
	var s site
	if err := json.Unmarshal(req.ConfigJSON, &s); err != nil {
		return s, fmt.Errorf("reading the effective configuration: %w", err)
	}
	if s.DocumentRoot != "" && !filepath.IsAbs(s.DocumentRoot) {
		s.DocumentRoot = filepath.Join(s.ServerRoot, s.DocumentRoot)
	}
	return s, nil
}

// checkRoot returns a ConfigErrors naming document_root when it is not an
// existing directory.
func checkRoot(s site) error {
	bad := func(format string, a ...any) error {
		return hook.ConfigErrors{{Key: "document_root", Message: fmt.Sprintf(format, a...)}}
	}
	if s.DocumentRoot == "" {
		return bad("must be set: warmup indexes the files under it")
	}
	fi, err := os.Stat(s.DocumentRoot)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return bad("%s does not exist", s.DocumentRoot)
	case err != nil:
		return bad("%v", err)
	case !fi.IsDir():
		return bad("%s is not a directory", s.DocumentRoot)
	}
	return nil
}

// Configure rejects a configuration whose document_root is not an existing
// directory, with a ConfigError naming document_root.
func (w *Warmup) Configure(_ context.Context, req *hook.PhaseRequest) (*hook.ConfigureResponse, error) {
	s, err := readSite(req)
	if err != nil {
		return nil, err
	}
	if err := checkRoot(s); err != nil {
		return nil, err
	}
	return &hook.ConfigureResponse{}, nil
}

// PostConfig walks document_root. On pass 1 (the rehearsal of the double
// start) and on a dry run it only counts the files; on every later pass it
// reads each one, which warms the page cache, and writes the index. It
// checks document_root again, as the configure phase may not have run this
// plugin (see the README).
func (w *Warmup) PostConfig(ctx context.Context, req *hook.PhaseRequest) (*hook.PhaseResponse, error) {
	s, err := readSite(req)
	if err != nil {
		return nil, err
	}
	if err := checkRoot(s); err != nil {
		return nil, err
	}
	index, err := indexPath(s, req.Settings)
	if err != nil {
		return nil, err
	}
	if req.Pass == 1 || req.DryRun {
		n, size, err := walk(ctx, s.DocumentRoot, index, nil)
		if err != nil {
			return nil, err
		}
		w.log.Info("warm-up counted files; it indexes them on pass 2", "files", n, "bytes", size,
			"pass", req.Pass, "generation", req.Generation, "dry_run", req.DryRun)
		return &hook.PhaseResponse{}, nil
	}
	n, size, err := writeIndex(ctx, s.DocumentRoot, index)
	if err != nil {
		return nil, err
	}
	w.log.Info("warm-up indexed files", "files", n, "bytes", size, "index", index,
		"pass", req.Pass, "generation", req.Generation)
	return &hook.PhaseResponse{}, nil
}

// indexPath is the index setting's path, or warmup.index beside
// document_root.
func indexPath(s site, settings map[string]any) (string, error) {
	p, err := indexSetting(settings)
	if err != nil || p == "" {
		return filepath.Join(s.DocumentRoot, "..", "warmup.index"), err
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(s.ServerRoot, p)
	}
	return filepath.Clean(p), nil
}

// walk calls visit (when not nil) for each regular file under root, in
// lexical order, skipping the index itself, and returns how many files it
// saw and their total size. It stops when ctx ends.
func walk(ctx context.Context, root, index string, visit func(rel, path string, size int64) error) (files int, size int64, err error) {
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !d.Type().IsRegular() || path == index {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		files++
		size += fi.Size()
		if visit == nil {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		return visit(filepath.ToSlash(rel), path, fi.Size())
	})
	if err != nil {
		return 0, 0, fmt.Errorf("walking document_root %s: %w", root, err)
	}
	return files, size, nil
}

// writeIndex reads every file under root and writes the index: one line
// per file, "sha256 size path". The file is replaced whole (written beside,
// after the walk, and renamed), so a reader never sees half an index.
func writeIndex(ctx context.Context, root, index string) (files int, size int64, err error) {
	var b strings.Builder
	files, size, err = walk(ctx, root, index, func(rel, path string, _ int64) error {
		sum, n, err := hashFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %d %s\n", sum, n, rel)
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	if err := replaceFile(index, b.String()); err != nil {
		return 0, 0, fmt.Errorf("writing the index: %w", err)
	}
	return files, size, nil
}

// replaceFile writes content to a new file beside path and renames it over
// path.
func replaceFile(path, content string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.WriteString(tmp, content); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// hashFile reads the file at path to its end and returns its SHA-256 and
// the bytes read.
func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// ChildSpawned logs a child the master started (plugin protocol 2).
func (w *Warmup) ChildSpawned(_ context.Context, req *hook.ChildEventRequest) error {
	w.log.Info("child spawned", "pid", req.PID, "slot", req.Slot, "generation", req.Generation)
	return nil
}

// ChildExited logs a child that exited, with its status (plugin protocol 2).
func (w *Warmup) ChildExited(_ context.Context, req *hook.ChildEventRequest) error {
	w.log.Info("child exited", "pid", req.PID, "slot", req.Slot, "generation", req.Generation, "status", req.Status)
	return nil
}
