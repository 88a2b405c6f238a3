// Package policy is the maintenance policy shared by phased's built-in MPMs:
// the reading of their settings with Apache 2.4's defaults and clamps
// (worker_check_config, event_check_config, prefork_check_config and the
// checks of their run functions), and one maintenance tick as Apache's
// perform_idle_server_maintenance, with the state Apache retains between
// ticks (the idle spawn rate, the hold-off after a restart, the
// max_request_workers report).
//
// The worker, event and prefork packages wrap a Core in their own Policy
// type; this package is internal so that the rules can change without
// breaking anyone.
package policy
