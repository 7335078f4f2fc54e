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

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
