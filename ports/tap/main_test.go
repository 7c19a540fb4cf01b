package tap

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		sweepStaleNS()
	}
	goleak.VerifyTestMain(m)
}
