package pluginhost

import (
	"os"
	"testing"

	"github.com/eventhost/eventhost/host/internal/testbin"
)

// TestMain removes the test binaries testbin built.
func TestMain(m *testing.M) { os.Exit(testbin.Main(m)) }
