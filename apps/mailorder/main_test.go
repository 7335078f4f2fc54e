package mailorder_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/plba/plba/platform/config"
)

// hostSection stands in for cmd/host's "host" section, so that configs
// written for the host (configs/demo.yaml) load in these tests.
var _ = config.Declare("host", struct {
	Apps []string `koanf:"apps"`
}{})

func TestMain(m *testing.M) { goleak.VerifyTestMain(cleanupM{m}) }

// cleanupM removes the host binary built by the crash test after the run.
type cleanupM struct{ *testing.M }

func (c cleanupM) Run() int {
	defer cleanupHost()
	return c.M.Run()
}
