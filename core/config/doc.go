// Package config loads phased's configuration.
//
// # Layers
//
// A configuration is built from up to four layers, each over the one before:
//
//  1. the embedded default (default.yaml in this package: the worker MPM on
//     127.0.0.1:8080), which is also what Default returns;
//  2. the YAML file given with phased -f (LoadOptions.File);
//  3. the environment (LoadOptions.Env): PHASED_<KEY>, upper case, "__"
//     between nested keys, so PHASED_MPM__START_SERVERS=4 sets
//     mpm.start_servers and PHASED_ERROR_LOG__LEVEL=debug sets
//     error_log.level; names under PHASED_APP__ENV__ keep their case;
//  4. command-line overrides (LoadOptions.Overrides) from -c key=value, with
//     dotted keys: -c mpm.start_servers=4. Repeated keys: the last one wins.
//
// Mappings merge key by key; a list given by a layer replaces the whole list
// beneath it. Values from the environment and -c are strings converted to
// the key's type: "4" to an integer, "30s" to a duration, "true" to a
// boolean, and "a,b" to the list [a, b], so
// PHASED_LISTEN=127.0.0.1:1,127.0.0.1:2 listens twice.
//
// # Environment references
//
// In the file, ${VAR} and ${VAR:-default} in any value are read from the
// environment on every load, so each graceful restart reads them again:
// `listen: ["0.0.0.0:${PORT:-8080}"]` is the container convention. An
// empty variable takes the default; one that is not set and has no
// default is an error naming the key and the variable. $${ writes ${.
//
// # Reserved environment names
//
// phased itself sets some PHASED_ variables for hooks and children. They are
// not configuration; Load ignores them instead of rejecting them as unknown
// keys:
//
//	PHASED_PHASE       the phase a hook runs in
//	PHASED_PASS        the config pass (1 or 2 at start)
//	PHASED_GENERATION  the generation of children
//	PHASED_DRY_RUN     whether this is phased -t
//	PHASED_CONFIG      the path of the effective configuration as JSON
//	PHASED_SLOT        a child's scoreboard slot
//	PHASED_TEST_*      kept for tests
//	PHASED_CHILD_*     kept for the master-to-child protocol
//	PHASED_INTERNAL_*  kept for phased's internal use
//
// IsReservedEnv reports whether a name is one of them.
//
// # Checking
//
// Each layer is checked on its own before the layers merge, against the keys
// of Config found by reflection on its koanf tags, so a problem names the
// layer it is in. An unknown key is an error naming the key and its source:
//
//	/etc/phased/phased.yaml: unknown key "listn" (did you mean "listen"?)
//	/etc/phased/phased.yaml: unknown key "hooks[0].exce" (did you mean "exec"?)
//	environment PHASED_LISTN: unknown key "listn" (did you mean "listen"?)
//	-c listn=:80: unknown key "listn" (did you mean "listen"?)
//
// The mpm section is open: every key but name goes verbatim to the MPM, which
// validates its own settings. So is app.env. Values that cannot become their
// key's type are reported the same way, then the merged configuration is
// decoded (mapstructure with unknown keys rejected, as a second line of
// defence) and validated, and each validation error names the highest layer
// that set the key:
//
//	/srv/site/phased.yaml: graceful_shutdown_timeout: invalid duration "3x"
//	environment PHASED_LISTEN_BACKLOG: listen_backlog: must be between 1 and 65535, got 0
//
// Every such problem is an *Error; Load reports all it finds at once, joined
// with errors.Join.
//
// # Paths
//
// server_root is made absolute first: when relative it is taken from the
// config file's folder if the file set it, else from the working directory;
// unset, it is the config file's folder, or the working directory without a
// file. Then pid_file, control_socket, document_root, the error and access
// log paths (other than stderr and stdout), hooks[].plugin, and the first
// word of hooks[].exec, app.command and mpm.name when it contains a "/" are
// made absolute against server_root. An empty control_socket becomes the
// pid file with its extension replaced by ".sock".
//
// # Passing it on
//
// YAML writes the effective configuration the way users write it, for
// phased -S. JSON writes the same tree as JSON, which the master hands to
// hooks and children in a file named by PHASED_CONFIG; they read it back
// with FromJSON.
package config
