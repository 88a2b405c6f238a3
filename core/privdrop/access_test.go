package privdrop

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// testRoot returns a fresh directory under /tmp with mode 0755, removed when
// the test ends. Not t.TempDir: its parents may be 0700 root, which nobody
// cannot search, and every case would fail on them.
func testRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "privdrop-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Make everything removable again first: some cases take x away.
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// builder makes a test tree and fails the test on any error.
type builder struct {
	t   *testing.T
	dir string
}

func (b builder) path(name string) string { return filepath.Join(b.dir, name) }

// mkdir makes dir name with mode and returns its path. Make children first
// and take permissions away last (chmod), since the test runs as root and
// the modes only matter to the check.
func (b builder) mkdir(name string, mode fs.FileMode) string {
	b.t.Helper()
	p := b.path(name)
	if err := os.MkdirAll(p, 0o755); err != nil {
		b.t.Fatal(err)
	}
	b.chmod(name, mode)
	return p
}

// file writes file name with content and mode and returns its path.
func (b builder) file(name string, content []byte, mode fs.FileMode) string {
	b.t.Helper()
	p := b.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(p, content, 0o600); err != nil {
		b.t.Fatal(err)
	}
	b.chmod(name, mode)
	return p
}

// program writes a copy of /bin/true as name with mode.
func (b builder) program(name string, mode fs.FileMode) string {
	b.t.Helper()
	bin, err := os.ReadFile("/bin/true")
	if err != nil {
		b.t.Fatal(err)
	}
	return b.file(name, bin, mode)
}

// symlink makes name a symlink to target and returns its path.
func (b builder) symlink(target, name string) string {
	b.t.Helper()
	p := b.path(name)
	if err := os.Symlink(target, p); err != nil {
		b.t.Fatal(err)
	}
	return p
}

func (b builder) chmod(name string, mode fs.FileMode) {
	b.t.Helper()
	if err := os.Chmod(b.path(name), mode); err != nil {
		b.t.Fatal(err)
	}
}

// lchown sets name's owner and group without following a symlink.
func (b builder) lchown(name string, uid, gid int) {
	b.t.Helper()
	if err := os.Lchown(b.path(name), uid, gid); err != nil {
		b.t.Fatal(err)
	}
}

// accessCase is one path to check, shared by TestCheck (the model) and
// TestCheckAgreesWithKernel (the real thing).
type accessCase struct {
	name string
	// setup builds the tree and returns the path to check.
	setup func(b builder) string
	// root runs the case as uid 0 instead of nobody.
	root bool
	// exec checks with CheckExecutable instead of CheckReadable.
	exec bool
	// needsRoot skips the case unless the test runs as root (chown).
	needsRoot bool
	// want is a substring of the error, with {dir} for the case's
	// directory; "" means no error.
	want string
	// is, when set, must match the error with errors.Is.
	is error
	// noKernel leaves the case out of TestCheckAgreesWithKernel.
	noKernel bool
}

var hello = []byte("hello\n")

var accessCases = []accessCase{
	{name: "readable file", setup: func(b builder) string {
		return b.file("f", hello, 0o644)
	}},
	{name: "unreadable file", setup: func(b builder) string {
		return b.file("f", hello, 0o600)
	}, want: "cannot read {dir}/f (mode -rw-------"},
	{name: "unsearchable parent", setup: func(b builder) string {
		f := b.file("d/f", hello, 0o644)
		b.chmod("d", 0o700)
		return f
	}, want: "cannot search {dir}/d (mode drwx------"},
	{name: "unsearchable grandparent", setup: func(b builder) string {
		f := b.file("a/b/f", hello, 0o644)
		b.chmod("a", 0o700)
		return f
	}, want: "cannot search {dir}/a (mode drwx------"},
	{name: "search-only parent is enough", setup: func(b builder) string {
		f := b.file("d/f", hello, 0o644)
		b.chmod("d", 0o711)
		return f
	}},
	{name: "readable directory", setup: func(b builder) string {
		return b.mkdir("d", 0o755)
	}},
	{name: "directory without r", setup: func(b builder) string {
		return b.mkdir("d", 0o711)
	}, want: "cannot read {dir}/d (mode drwx--x--x"},
	{name: "directory without x", setup: func(b builder) string {
		return b.mkdir("d", 0o744)
	}, want: "cannot search {dir}/d (mode drwxr--r--"},
	{name: "symlink to readable file", setup: func(b builder) string {
		b.file("f", hello, 0o644)
		return b.symlink("f", "link")
	}},
	{name: "symlink to unreadable file", setup: func(b builder) string {
		b.file("f", hello, 0o600)
		return b.symlink("f", "link")
	}, want: "cannot read {dir}/f (mode -rw-------"},
	{name: "symlink into unsearchable directory", setup: func(b builder) string {
		b.file("secret/f", hello, 0o644)
		b.chmod("secret", 0o700)
		b.mkdir("pub", 0o755)
		return b.symlink("../secret/f", "pub/link")
	}, want: "cannot search {dir}/secret (mode drwx------"},
	{name: "absolute symlink chain", setup: func(b builder) string {
		b.file("real/f", hello, 0o644)
		b.symlink(b.path("real"), "l1")
		b.symlink("l1/f", "l2")
		return b.symlink(b.path("l2"), "l3")
	}},
	{name: "dotdot needs search on the directory it leaves", setup: func(b builder) string {
		b.file("f", hello, 0o644)
		b.mkdir("locked", 0o700)
		return b.dir + "/locked/../f" // not b.path: Join would clean it
	}, want: "cannot search {dir}/locked (mode drwx------"},
	{name: "dotdot after a symlink leaves the target", setup: func(b builder) string {
		b.file("a/f", hello, 0o644)
		b.mkdir("a/b", 0o755)
		b.file("f", hello, 0o600) // the lexical answer, unreadable
		b.symlink("a/b", "link")
		return b.dir + "/link/../f" // a/f to the kernel
	}},
	{name: "missing file", setup: func(b builder) string {
		return b.path("nope")
	}, want: "no such file or directory", is: fs.ErrNotExist},
	{name: "file as a directory", setup: func(b builder) string {
		b.file("f", hello, 0o644)
		return b.path("f/x")
	}, want: "not a directory", is: syscall.ENOTDIR},
	{name: "symlink loop", setup: func(b builder) string {
		b.symlink("b", "a")
		b.symlink("a", "b")
		return b.path("a")
	}, want: "too many levels of symbolic links", is: syscall.ELOOP},
	{name: "group bits decide for the group", needsRoot: true, setup: func(b builder) string {
		f := b.file("f", hello, 0o640)
		b.lchown("f", 0, 65534)
		return f
	}},
	{name: "group bits deny though other allows", needsRoot: true, setup: func(b builder) string {
		f := b.file("f", hello, 0o604)
		b.lchown("f", 0, 65534)
		return f
	}, want: "cannot read {dir}/f (mode -rw----r-- owned by root:nogroup)"},
	{name: "owner bits deny though other allows", needsRoot: true, setup: func(b builder) string {
		f := b.file("f", hello, 0o077)
		b.lchown("f", 65534, 0)
		return f
	}, want: "cannot read {dir}/f (mode ----rwxrwx owned by nobody:root)"},
	{name: "unowned ids print as numbers", needsRoot: true, setup: func(b builder) string {
		f := b.file("f", hello, 0o600)
		b.lchown("f", 123456789, 123456789)
		return f
	}, want: "owned by 123456789:123456789)"},
	{name: "root reads a 0000 file", root: true, setup: func(b builder) string {
		return b.file("f", hello, 0)
	}},

	{name: "executable", exec: true, setup: func(b builder) string {
		return b.program("prog", 0o755)
	}},
	{name: "not executable", exec: true, setup: func(b builder) string {
		return b.program("prog", 0o644)
	}, want: "cannot execute {dir}/prog (mode -rw-r--r--"},
	{name: "executable by its owner only", exec: true, setup: func(b builder) string {
		return b.program("prog", 0o744)
	}, want: "cannot execute {dir}/prog (mode -rwxr--r--"},
	{name: "executable without r", exec: true, setup: func(b builder) string {
		return b.program("prog", 0o711)
	}},
	{name: "executable in unsearchable directory", exec: true, setup: func(b builder) string {
		p := b.program("bin/prog", 0o755)
		b.chmod("bin", 0o700)
		return p
	}, want: "cannot search {dir}/bin (mode drwx------"},
	{name: "symlink to executable", exec: true, setup: func(b builder) string {
		b.program("prog", 0o755)
		return b.symlink("prog", "link")
	}},
	{name: "root needs an x bit", root: true, exec: true, setup: func(b builder) string {
		return b.program("prog", 0o644)
	}, want: "user root (uid 0) cannot execute {dir}/prog (mode -rw-r--r--"},
	{name: "root executes any x bit", root: true, exec: true, setup: func(b builder) string {
		return b.program("prog", 0o001)
	}},
	{name: "directory is not a program", exec: true, setup: func(b builder) string {
		return b.mkdir("d", 0o755)
	}, want: "{dir}/d is a directory, not a program"},
}

// check runs the check a case asks for, as who.
func (c accessCase) check(who *Identity, path string) error {
	if c.exec {
		return who.CheckExecutable("test_path", path)
	}
	return who.CheckReadable("test_path", path)
}

// build makes the case's tree in a fresh directory and returns the path to
// check, that directory, and who to check as.
func (c accessCase) build(t *testing.T, root string) (path, dir string, who *Identity) {
	t.Helper()
	if c.needsRoot && os.Geteuid() != 0 {
		t.Skip("this case chowns files, which needs root")
	}
	dir = filepath.Join(root, strings.ReplaceAll(c.name, " ", "_"))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	who = nobody(t)
	if uint32(os.Geteuid()) == who.UID {
		t.Skip("the test runs as nobody, who would own the files it checks nobody against")
	}
	if c.root {
		if os.Geteuid() != 0 {
			t.Skip("this case checks as root, whose files this process cannot make")
		}
		var err error
		if who, err = resolve("root", "", 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	return c.setup(builder{t: t, dir: dir}), dir, who
}

func TestCheck(t *testing.T) {
	root := testRoot(t)
	for _, c := range accessCases {
		t.Run(c.name, func(t *testing.T) {
			path, dir, who := c.build(t, root)
			err := c.check(who, path)
			if c.want == "" {
				if err != nil {
					t.Fatalf("check(%s): %v", path, err)
				}
				return
			}
			want := strings.ReplaceAll(c.want, "{dir}", dir)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("check(%s) = %v, want an error containing %q", path, err, want)
			}
			if !strings.HasPrefix(err.Error(), "test_path "+path+": ") {
				t.Errorf("error %q does not start with the label and path", err)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, c.is)
			}
		})
	}
}

// TestCheckAgreesWithKernel runs every case for real: cat (or cd and ls, for
// a directory) or the program itself, as the case's identity through its
// Credential, and asserts the kernel allows exactly what the check allows.
func TestCheckAgreesWithKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running children as nobody needs root; run the tests as root to check the kernel agrees")
	}
	if testing.Short() {
		t.Skip("forks a child per case; skipped with -short")
	}
	root := testRoot(t)
	for _, c := range accessCases {
		if c.noKernel {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			path, _, who := c.build(t, root)
			checkErr := c.check(who, path)
			kernelErr := kernel(who, path, c.exec)
			if (checkErr == nil) != (kernelErr == nil) {
				t.Fatalf("check and kernel disagree on %s:\ncheck:  %v\nkernel: %v", path, checkErr, kernelErr)
			}
		})
	}
}

// kernel does what the check predicts, as who: runs path when run, else
// reads it (a directory: enters and lists it).
func kernel(who *Identity, path string, run bool) error {
	cmd := &exec.Cmd{Path: path, Args: []string{path}} // no LookPath: it checks modes as root
	if !run {
		const probe = `if [ -d "$1" ]; then cd -- "$1" && exec ls -a >/dev/null; else exec cat -- "$1" >/dev/null; fi`
		cmd = exec.Command("/bin/sh", "-c", probe, "sh", path)
	}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: who.Credential()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

// TestProtectedSymlinks checks a symlink in a sticky world-writable
// directory, owned by someone else, with fs.protected_symlinks on and off,
// and that the check with the machine's own setting agrees with the kernel.
func TestProtectedSymlinks(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the case chowns a symlink, which needs root")
	}
	b := builder{t: t, dir: testRoot(t)}
	b.file("f", hello, 0o644)
	b.mkdir("sticky", fs.ModeSticky|0o777)
	link := b.symlink("../f", "sticky/link")
	b.lchown("sticky/link", 123456789, 0)
	who := nobody(t)

	on := checker{protectedSymlinks: true, noexec: noexecMount, hasACL: hasACL}
	err := on.check(who, "test_path", link, false)
	var ae *AccessError
	if !errors.As(err, &ae) || ae.Need != "follow" || ae.Component != link {
		t.Fatalf("protected_symlinks on: check = %v, want an *AccessError to follow %s", err, link)
	}
	if !strings.Contains(err.Error(), "fs.protected_symlinks") {
		t.Errorf("error %q does not name fs.protected_symlinks", err)
	}
	// The link's owner or the directory's owner may follow it.
	b.lchown("sticky/link", 0, 0)
	if err := on.check(who, "test_path", link, false); err != nil {
		t.Errorf("protected_symlinks on, link owned by the directory's owner: %v", err)
	}
	b.lchown("sticky/link", 65534, 65534)
	if err := on.check(who, "test_path", link, false); err != nil {
		t.Errorf("protected_symlinks on, link owned by the user: %v", err)
	}
	b.lchown("sticky/link", 123456789, 0)
	off := on
	off.protectedSymlinks = false
	if err := off.check(who, "test_path", link, false); err != nil {
		t.Errorf("protected_symlinks off: %v", err)
	}

	if testing.Short() {
		return
	}
	checkErr := who.CheckReadable("test_path", link)
	kernelErr := kernel(who, link, false)
	if (checkErr == nil) != (kernelErr == nil) {
		t.Fatalf("check and kernel disagree on %s (protected_symlinks %v):\ncheck:  %v\nkernel: %v",
			link, protectedSymlinks(), checkErr, kernelErr)
	}
}

// TestAccessError checks the whole message and the fields of one denial.
func TestAccessError(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the message names root:root as the owner, which needs the test to run as root")
	}
	b := builder{t: t, dir: testRoot(t)}
	b.file("srv/www/index.html", hello, 0o644)
	b.chmod("srv", 0o700)
	root := b.path("srv/www")
	err := nobody(t).CheckReadable("document_root", root)
	want := fmt.Sprintf("document_root %s: user nobody (uid 65534) cannot search %s (mode drwx------ owned by root:root)",
		root, b.path("srv"))
	if err == nil || err.Error() != want {
		t.Fatalf("CheckReadable = %v\nwant %s", err, want)
	}
	var ae *AccessError
	if !errors.As(err, &ae) {
		t.Fatalf("errors.As(%v, *AccessError) = false", err)
	}
	if ae.What != "document_root" || ae.Path != root || ae.Need != "search" || ae.Component != b.path("srv") ||
		ae.Mode != fs.ModeDir|0o700 || ae.Owner != "root" || ae.Group != "root" || ae.Identity.UID != 65534 {
		t.Errorf("AccessError = %+v", ae)
	}
}

func TestCheckNilIdentity(t *testing.T) {
	var none *Identity
	if err := none.CheckReadable("document_root", "/nonexistent/x"); err != nil {
		t.Errorf("nil Identity's CheckReadable = %v, want nil", err)
	}
	if err := none.CheckExecutable("binary", "/nonexistent/x"); err != nil {
		t.Errorf("nil Identity's CheckExecutable = %v, want nil", err)
	}
}

func TestCheckRelativePath(t *testing.T) {
	b := builder{t: t, dir: testRoot(t)}
	if uint32(os.Geteuid()) == nobody(t).UID {
		t.Skip("the test runs as nobody, who would own the file it checks nobody against")
	}
	b.file("f", hello, 0o600)
	t.Chdir(b.dir)
	err := nobody(t).CheckReadable("test_path", "./f")
	if want := "cannot read " + b.path("f") + " "; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("CheckReadable(./f) = %v, want an error containing %q", err, want)
	}
}
