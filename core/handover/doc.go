// Package handover takes over listening sockets from whoever passed them to
// this master, and hands them on: both ends of each hand-over live here.
//
// Socket activation (Activated): systemd opens the sockets, passes them as
// descriptors 3, 4, ... with LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES, and
// the master serves on them for its whole life, whatever the listen key
// says. Their names (LISTEN_FDNAMES) stay with them, through binary
// upgrades too.
//
// Binary upgrade (Start on the old master, Adopt on the new one), as nginx's
// and Unicorn's USR2 and cloudflare/tableflip do: the old master starts its
// own binary again with its listening sockets, its counters and a State
// (its pid and generation, when it started, its children), all carried by
// one sealed memory file whose descriptor one variable names, the sockets
// by name. The new master runs its configuration passes and starts its
// children while the old one serves; when they serve it reports "ready" on
// a pipe (Adopted.Handover) and waits for the old master's go-ahead
// (Upgrade.Proceed), sent once the old master has let go of the pid file
// and the control socket. If the new master fails first, it reports why
// (Adopted.Fail) and the old one keeps serving. There is no moment at
// which nobody accepts.
package handover
