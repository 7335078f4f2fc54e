// Package lifecycle keeps the registry of the host's components (platform
// parts, backends, pools, sources) and their states, and turns a
// component's fatal failure into the host's stop when its policy says so.
package lifecycle
