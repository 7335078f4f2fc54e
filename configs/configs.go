// Package configs embeds the ready configurations shipped with plba, so the
// host can run the demo with no file on disk ("host run" without --config).
package configs

import _ "embed"

// Demo is configs/demo.yaml: everything embedded, nothing to install.
//
//go:embed demo.yaml
var Demo []byte
