// Package privdrop decides who the children run as when the master is root,
// and checks, before any child is spawned, that they will be able to read
// what they need.
//
// # The story
//
// Apache httpd starts as root so it can bind port 80 and open its logs, then
// runs its children as the User and Group named in its configuration (often
// www-data, or nobody:nogroup). phased does the same: the master stays root,
// and every child is exec'd with the credential of an [Identity]:
//
//	id, err := privdrop.Resolve(cfg.User, cfg.Group) // "nobody", "" -> nobody:nogroup
//	...
//	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: id.Credential()}
//
// [Resolve] accepts names or numeric ids; an empty group means the user's
// primary group, and an empty user means "no change" (a nil *Identity: the
// children run as the master). A master that is not root cannot switch users,
// so asking it to is a configuration error, reported before anything starts;
// asking it to run children as itself is simply nothing to do.
//
// [Identity.Credential] sets the uid, the gid and an explicitly empty list of
// supplementary groups: root's supplementary groups are dropped, so a child
// has exactly one group, the Identity's.
//
// # Why check first
//
// The failure this package exists to prevent is a crash loop. The master is
// root and can read everything; a child running as nobody cannot read a
// document root under /root, or a binary in a 0700 directory, or a file
// whose mode is 0600. Without a check the master spawns a child, the child
// fails (or worse, starts and answers every request with 403), the master
// respawns it, and the log fills with symptoms while the cause — a directory
// three levels up missing its x bit — is never named.
//
// So the master calls [Identity.CheckReadable] on the document root (and
// anything else the children open) and [Identity.CheckExecutable] on the
// child binary before spawning the first child, and refuses to start with a
// message that names the setting, the path, and the component that denies
// access:
//
//	document_root /srv/www: user nobody (uid 65534) cannot search /srv (mode drwx------ owned by root:root)
//
// # How the check decides
//
// The check walks the path one component at a time as the kernel would for
// the Identity: every directory on the way must grant search (x), symlinks
// are followed (relative ones against the directory holding them, with the
// kernel's limit of 40), and the final file must grant read (a directory:
// read and search) or execute. Each decision uses the classic permission
// bits: the owner bits when the Identity's uid owns the file, else the group
// bits when the file's group is the Identity's group (its only group, since
// supplementary groups are dropped), else the other bits. For uid 0 every
// read and search is allowed, and execute needs at least one x bit, as for
// the kernel's CAP_DAC_OVERRIDE.
//
// On Linux the check also follows the kernel in two places: the
// fs.protected_symlinks sysctl (a symlink in a sticky, world-writable
// directory such as /tmp is followed only by its owner, or when the
// directory's owner also owns the link), and, for CheckExecutable, a file
// system mounted noexec.
//
// POSIX ACLs are not considered: the check is for ACL-free systems. A path
// whose ACL grants access the mode bits do not is reported as denied (the
// error then says the component has an ACL), and an ACL that denies what the
// mode bits allow is missed. Nor are capabilities other than root's, LSMs
// (SELinux, AppArmor) or NFS root squashing. The kernel stays the final
// judge; this check only makes the common mistakes fail early and clearly.
package privdrop
