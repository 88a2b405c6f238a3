package privdrop

import (
	"errors"
	"os"
	"os/exec"
	osuser "os/user"
	"strings"
	"syscall"
	"testing"
)

// nobody is the identity most tests check as: nobody:nogroup, resolved as
// if by a root master whatever the test runs as.
func nobody(t *testing.T) *Identity {
	t.Helper()
	id, err := resolve("nobody", "", 0, 0)
	if err != nil {
		t.Fatalf("resolving nobody: %v", err)
	}
	return id
}

func TestResolve(t *testing.T) {
	const noUser, noGroup = "phased-no-such-user", "phased-no-such-group"
	nobodyID := Identity{User: "nobody", Group: "nogroup", UID: 65534, GID: 65534, Home: "/nonexistent"}
	withGroup := func(id Identity, group string, gid uint32) *Identity {
		id.Group, id.GID = group, gid
		return &id
	}
	tests := []struct {
		name        string
		user, group string
		euid, egid  int // the process Resolve runs in
		want        *Identity
		wantErr     string // exact message; "" for none
		errAs       any    // when set, errors.As must find this type
	}{
		{name: "no user is no change", want: nil},
		{name: "no user ignores group", group: "nogroup", want: nil},
		{name: "name, primary group", user: "nobody", want: &nobodyID},
		{name: "number, primary group", user: "65534", want: &nobodyID},
		{name: "apache number form", user: "#65534", group: "#65534", want: &nobodyID},
		{name: "group by name", user: "nobody", group: "root", want: withGroup(nobodyID, "root", 0)},
		{name: "group by number", user: "nobody", group: "0", want: withGroup(nobodyID, "root", 0)},
		{name: "root", user: "root",
			want: &Identity{User: "root", Group: "root", UID: 0, GID: 0, Home: "/root"}},
		{name: "bare uid and gid", user: "123456789", group: "123456789",
			want: &Identity{User: "123456789", Group: "123456789", UID: 123456789, GID: 123456789}},
		{name: "bare uid needs a group", user: "123456789",
			wantErr: `group: user "123456789" has no passwd entry, so no primary group; set group`},
		{name: "unknown user", user: noUser,
			wantErr: `user: no such user "phased-no-such-user"`, errAs: new(osuser.UnknownUserError)},
		{name: "unknown group", user: "nobody", group: noGroup,
			wantErr: `group: no such group "phased-no-such-group"`, errAs: new(osuser.UnknownGroupError)},
		{name: "uid -1", user: "4294967295",
			wantErr: `user: invalid uid "4294967295": 4294967295 means no change to the kernel`},
		{name: "uid out of range", user: "99999999999",
			wantErr: `user: invalid uid "99999999999": out of range`},
		{name: "gid out of range", user: "nobody", group: "#99999999999",
			wantErr: `group: invalid gid "#99999999999": out of range`},

		// Not root.
		{name: "not root, another user", user: "nobody", euid: 1000, egid: 1000,
			wantErr: `user: "nobody": only root can run children as another user (running as uid 1000)`},
		{name: "not root, another group", user: "nobody", group: "root", euid: 65534, egid: 65534,
			wantErr: `group: "root": only root can run children as another group (running as gid 65534)`},
		{name: "not root, itself", user: "nobody", euid: 65534, egid: 65534, want: nil},
		{name: "not root, itself by number", user: "65534", group: "nogroup", euid: 65534, egid: 65534, want: nil},
		{name: "not root, unknown user", user: noUser, euid: 1000, egid: 1000,
			wantErr: `user: no such user "phased-no-such-user"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := resolve(tt.user, tt.group, tt.euid, tt.egid)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("resolve(%q, %q) error = %v, want %q", tt.user, tt.group, err, tt.wantErr)
				}
				if tt.errAs != nil && !errors.As(err, tt.errAs) {
					t.Errorf("errors.As(%v, %T) = false", err, tt.errAs)
				}
				if got != nil {
					t.Errorf("resolve returned %+v with its error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve(%q, %q): %v", tt.user, tt.group, err)
			}
			switch {
			case tt.want == nil && got != nil:
				t.Fatalf("resolve(%q, %q) = %+v, want nil", tt.user, tt.group, got)
			case tt.want != nil && (got == nil || *got != *tt.want):
				t.Fatalf("resolve(%q, %q) = %+v, want %+v", tt.user, tt.group, got, tt.want)
			}
		})
	}
}

func TestResolveAsThisProcess(t *testing.T) {
	u, err := osuser.Current()
	if err != nil {
		t.Skipf("no current user: %v", err)
	}
	id, err := Resolve(u.Username, "")
	if err != nil {
		t.Fatalf("Resolve(%q, \"\"): %v", u.Username, err)
	}
	if os.Geteuid() != 0 {
		if id != nil {
			t.Errorf("Resolve of the current user when not root = %v, want nil", id)
		}
		return
	}
	if id == nil || id.UID != 0 {
		t.Errorf("Resolve(%q, \"\") as root = %v, want uid 0", u.Username, id)
	}
}

func TestCredential(t *testing.T) {
	id := nobody(t)
	c := id.Credential()
	if c.Uid != 65534 || c.Gid != 65534 {
		t.Errorf("Credential() = %d:%d, want 65534:65534", c.Uid, c.Gid)
	}
	if c.Groups == nil || len(c.Groups) != 0 {
		t.Errorf("Credential().Groups = %#v, want an explicit empty slice", c.Groups)
	}
	if c.NoSetGroups {
		t.Error("Credential().NoSetGroups = true, want false")
	}
	var none *Identity
	if none.Credential() != nil {
		t.Error("nil Identity's Credential() is not nil")
	}
}

func TestString(t *testing.T) {
	if got, want := nobody(t).String(), "nobody:nogroup (65534:65534)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	var none *Identity
	if got := none.String(); got != "" {
		t.Errorf("nil Identity's String() = %q, want \"\"", got)
	}
}

// TestCredentialRealExec runs id(1) with the credential and checks the child
// has exactly nobody's uid, gid and group list: root's groups are dropped.
func TestCredentialRealExec(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("running children as nobody needs root; run the tests as root to exec for real")
	}
	cmd := exec.Command("/bin/sh", "-c", "id -u; id -g; id -G")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody(t).Credential()}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running id as nobody: %v: %s", err, out)
	}
	if got, want := strings.Fields(string(out)), []string{"65534", "65534", "65534"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("id -u; id -g; id -G as nobody = %q, want %q", got, want)
	}
}
