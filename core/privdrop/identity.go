package privdrop

import (
	"errors"
	"fmt"
	"os"
	osuser "os/user"
	"strconv"
	"syscall"
)

// Identity is who children run as.
type Identity struct {
	// User is the user's name, or its number when the uid has no passwd
	// entry.
	User string
	// Group is the group's name, or its number when the gid has no group
	// entry.
	Group string
	// UID and GID are the numeric ids the children get.
	UID, GID uint32
	// Home is the user's home directory from its passwd entry; "" when the
	// uid has no entry.
	Home string
}

// Resolve looks up user and group, each a name or a numeric id (Apache's
// "#1000" form is accepted too). A numeric id with no passwd or group entry
// is accepted as it is, so a container's bare uid works. An empty group
// means the user's primary group; an empty user means no change and returns
// nil, nil whatever group says.
//
// Errors name the key they are about: `user: no such user "bob"`,
// `group: no such group "x"`.
//
// Only root can run children as another user or group. When the process is
// not root, Resolve returns an error if user or group differs from the
// process's own (`user: "nobody": only root can run children as another user
// (running as uid 1000)`), and nil, nil when they are its own: there is
// nothing to change.
func Resolve(user, group string) (*Identity, error) {
	return resolve(user, group, os.Geteuid(), os.Getegid())
}

// resolve is Resolve for a process running as euid:egid.
func resolve(user, group string, euid, egid int) (*Identity, error) {
	if user == "" {
		return nil, nil
	}
	id, primary, err := lookupUser(user)
	if err != nil {
		return nil, err
	}
	if group == "" {
		if primary == "" {
			return nil, fmt.Errorf("group: user %q has no passwd entry, so no primary group; set group", user)
		}
		group = primary
	}
	if err := lookupGroup(id, group); err != nil {
		return nil, err
	}
	if euid == 0 {
		return id, nil
	}
	if int64(id.UID) != int64(euid) {
		return nil, fmt.Errorf("user: %q: only root can run children as another user (running as uid %d)", user, euid)
	}
	if int64(id.GID) != int64(egid) {
		return nil, fmt.Errorf("group: %q: only root can run children as another group (running as gid %d)", group, egid)
	}
	return nil, nil
}

// lookupUser returns the Identity for user with User, UID and Home set, and
// the user's primary gid ("" when the uid has no passwd entry).
func lookupUser(user string) (*Identity, string, error) {
	if n, ok, err := parseID(user); ok {
		if err != nil {
			return nil, "", fmt.Errorf("user: invalid uid %q: %w", user, err)
		}
		u, err := osuser.LookupId(strconv.FormatUint(uint64(n), 10))
		var unknown osuser.UnknownUserIdError
		switch {
		case errors.As(err, &unknown):
			return &Identity{User: strconv.FormatUint(uint64(n), 10), UID: n}, "", nil
		case err != nil:
			return nil, "", fmt.Errorf("user: looking up uid %q: %w", user, err)
		}
		return &Identity{User: u.Username, UID: n, Home: u.HomeDir}, u.Gid, nil
	}
	u, err := osuser.Lookup(user)
	var unknown osuser.UnknownUserError
	switch {
	case errors.As(err, &unknown):
		return nil, "", &keyError{msg: fmt.Sprintf("user: no such user %q", user), err: err}
	case err != nil:
		return nil, "", fmt.Errorf("user: looking up %q: %w", user, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, "", fmt.Errorf("user: %q has a non-numeric uid %q", user, u.Uid)
	}
	return &Identity{User: u.Username, UID: uint32(uid), Home: u.HomeDir}, u.Gid, nil
}

// lookupGroup sets id.Group and id.GID from group.
func lookupGroup(id *Identity, group string) error {
	if n, ok, err := parseID(group); ok {
		if err != nil {
			return fmt.Errorf("group: invalid gid %q: %w", group, err)
		}
		g, err := osuser.LookupGroupId(strconv.FormatUint(uint64(n), 10))
		var unknown osuser.UnknownGroupIdError
		switch {
		case errors.As(err, &unknown):
			id.Group = strconv.FormatUint(uint64(n), 10)
		case err != nil:
			return fmt.Errorf("group: looking up gid %q: %w", group, err)
		default:
			id.Group = g.Name
		}
		id.GID = n
		return nil
	}
	g, err := osuser.LookupGroup(group)
	var unknown osuser.UnknownGroupError
	switch {
	case errors.As(err, &unknown):
		return &keyError{msg: fmt.Sprintf("group: no such group %q", group), err: err}
	case err != nil:
		return fmt.Errorf("group: looking up %q: %w", group, err)
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return fmt.Errorf("group: %q has a non-numeric gid %q", group, g.Gid)
	}
	id.Group, id.GID = g.Name, uint32(gid)
	return nil
}

// parseID reports whether s is a numeric id ("1000" or "#1000") and returns
// its value. An id that is numeric but out of range, or is 4294967295 (which
// setuid and setgid read as "no change"), is returned with ok and an error.
func parseID(s string) (n uint32, ok bool, err error) {
	digits := s
	if len(digits) > 1 && digits[0] == '#' {
		digits = digits[1:]
	}
	for _, c := range []byte(digits) {
		if c < '0' || c > '9' {
			return 0, false, nil
		}
	}
	if digits == "" {
		return 0, false, nil
	}
	v, err := strconv.ParseUint(digits, 10, 32)
	if err != nil {
		return 0, true, errors.New("out of range")
	}
	if v == 1<<32-1 {
		return 0, true, errors.New("4294967295 means no change to the kernel")
	}
	return uint32(v), true, nil
}

// keyError is an error with an exact message that still unwraps to the
// os/user error behind it.
type keyError struct {
	msg string
	err error
}

func (e *keyError) Error() string { return e.msg }
func (e *keyError) Unwrap() error { return e.err }

// Credential returns the credential to exec a child as id, for
// syscall.SysProcAttr.Credential: its Uid and Gid, and Groups set to an
// explicit empty slice with NoSetGroups false, so the child's supplementary
// groups are dropped. A nil id returns nil: the child runs as the master.
func (id *Identity) Credential() *syscall.Credential {
	if id == nil {
		return nil
	}
	return &syscall.Credential{Uid: id.UID, Gid: id.GID, Groups: []uint32{}, NoSetGroups: false}
}

// String returns "user:group (uid:gid)", such as "nobody:nogroup
// (65534:65534)", or "" for a nil id.
func (id *Identity) String() string {
	if id == nil {
		return ""
	}
	return fmt.Sprintf("%s:%s (%d:%d)", id.User, id.Group, id.UID, id.GID)
}
