// Package config loads the host's configuration: typed sections declared
// by the packages that use them, filled from layers (declared defaults <
// YAML files < PLBA_<SECTION>__<KEY> environment variables < --set),
// strictly (an unknown key is an error naming it), every problem reported
// at once with its source and key path, secrets redacted when printed. A
// secret may come from a file named by its <key>_file (a regular file,
// see RegularFile, of at most MaxFileSize bytes); an empty string
// secret or _file name in a file, the environment or --set is one not
// given (it replaces nothing an earlier layer gave; an entry of a secret
// mapping is not a string secret, and Options.Values sets a section as
// it is).
//
// A module declares its section once, with the real defaults, and gets
// it from the graph:
//
//	var Module = fx.Module("invoices",
//		config.Provide("invoices", DefaultConfig()), // declares "invoices", provides Config
//		fx.Provide(newMailer),                       // func newMailer(c Config) *Mailer
//	)
//
// The declaration must run before the configuration is loaded: a
// package-level module does that, otherwise use Declare at package level
// and its Declaration.Provide in the module. The section's value is
// private to the fx.Module that provides it, so two modules may each have
// a section of the same type; the whole graph reaches it by name with
// Tag.
//
// After decoding and validation, a section type's method WithDefaults()
// (returning its own type), if it has one, is applied, and then the
// function a declaration's Derived gave, which completes a default that
// follows another section (admin.audit.stream follows
// queue.jetstream.stream_prefix): the graph and `host config show` get
// the effective values, not zeros that stand for a default.
package config
