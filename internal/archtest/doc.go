// Package archtest holds the test that keeps the dependency direction of
// docs/architecture.md true: cmd -> apps -> modules -> platform, and
// apps/*/domain free of the runtime.
package archtest
