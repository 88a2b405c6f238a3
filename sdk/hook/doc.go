// Package hook is the interface of a phased hook plugin: a separate process
// that the master runs at lifecycle phases, and that can watch children come
// and go.
//
// A hook plugin is a value with a Describe method, plus one small method
// for each phase it implements, found by type assertion as Caddy finds a
// module's Provisioner:
//
//	Configurer      configure     validate or extend the configuration
//	LogOpener       open-logs     open log files while still privileged
//	PostConfigurer  post-config   one-time master work: migrations, warm-up
//	ShutdownHandler shutdown      flush, deregister
//	ChildWatcher    (events)      a child was spawned, a child exited
//
// Describe tells the master which of them to call; Implemented builds that
// answer from the methods a value has, so most plugins write
//
//	func (p *myHook) Describe(context.Context, *hook.DescribeRequest) (*hook.DescribeResponse, error) {
//		return hook.Implemented(p), nil
//	}
//
//	func main() { hook.Serve(&myHook{}) }
//
// Every phase call carries a PhaseRequest: the phase, the pass (1 and 2 at
// the double start, one more per graceful restart), the generation, whether
// this is a dry run (`phased -t`), the effective configuration as JSON, and
// the plugin's own settings (its hook entry's settings: mapping, which
// Describe gets too). A phase fails when its method returns an error;
// Configure can instead return ConfigErrors naming the configuration keys at
// fault, which the master reports as configuration errors, and Describe or
// any phase a *SettingError naming one of its settings, which the master
// reports as hooks[i].settings.KEY.
//
// # Protocol versions
//
// Serve speaks plugin protocol versions 1, 2 and 3 and the master picks the
// newest it also speaks. Version 1 carries Describe and the phases; version
// 2 adds child events; version 3 adds the settings and the plugin's Name.
// Under version 1 the master never calls a ChildWatcher, and
// DescribeRequest.Protocol says so; under 1 and 2 a hook entry with
// settings fails the configuration pass instead of leaving them unread.
//
// # The host side
//
// The master dispenses a Client through Plugin (plugins/host's
// PluginSets builds the plugin sets), and sdk/sdktest gives plugin
// authors the same Client in-process, for tests.
package hook
