package rerun

import (
	"os"
	"testing"

	"github.com/eventhost/eventhost/host/internal/testbin"
	"github.com/eventhost/eventhost/host/sandbox"
)

// TestMain lets the test binary serve as the sandbox launcher (plugins are
// started through /proc/self/exe, which in a test is this binary), and
// removes the test binaries testbin built.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == sandbox.LauncherArg {
		sandbox.LauncherMain(os.Args)
	}
	os.Exit(testbin.Main(m))
}
