// Package host is the plba host as a library: an application's main is
//
//	func main() { os.Exit(host.Main(os.Args[1:], host.App("invoices", invoices.Module))) }
//
// and gets the whole command line (cobra): `run`, `config show`,
// `config validate`, `version` and `--version`, `--help` on every command,
// suggestions for mistyped commands. Main loads the configuration (files
// from --config, the environment, --set; without --config the
// configuration given with DefaultConfig, else the declared defaults),
// reports every configuration problem naming its source and key, composes
// the platform (platform.Module) with the applications, and runs it:
//
//   - the first log line names the configuration and the apps;
//   - start and stop are bounded by lifecycle.start_timeout and
//     lifecycle.stop_timeout; a start that times out names the components
//     still starting, a stop that times out those still stopping (a
//     source whose Run ignores its cancellation: source/<name>);
//   - on SIGINT or SIGTERM readiness turns 503, the host waits
//     lifecycle.shutdown_delay, then stops; a second signal exits at once;
//     a signal while starting abandons the start;
//   - exit status 0 is a clean stop, 1 a runtime failure, 2 a usage or
//     configuration error (also `config validate`'s answer to a problem).
//
// Build information comes from the linker (-X
// github.com/plba/plba/platform/host/internal/buildinfo.Version=...,
// .Commit=...) or, without it, from the Go toolchain's build information.
package host
