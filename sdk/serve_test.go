package sdk

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
)

// A plugin runs on one thread, with its GC target and memory limit, unless
// the environment says otherwise; then the environment wins.
func TestTuneRuntime(t *testing.T) {
	procs, percent, limit := runtime.GOMAXPROCS(0), debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	debug.SetGCPercent(percent)
	t.Cleanup(func() {
		runtime.GOMAXPROCS(procs)
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
	for _, name := range []string{"GOMAXPROCS", "GOGC", "GOMEMLIMIT"} {
		if v, ok := os.LookupEnv(name); ok {
			t.Cleanup(func() { os.Setenv(name, v) })
			os.Unsetenv(name)
		}
	}
	runtime.GOMAXPROCS(2)
	tuneRuntime()
	if got := runtime.GOMAXPROCS(0); got != pluginProcs {
		t.Errorf("GOMAXPROCS = %d, want %d", got, pluginProcs)
	}
	if got := debug.SetGCPercent(100); got != pluginGCPercent {
		t.Errorf("GC percent = %d, want %d", got, pluginGCPercent)
	}
	if got := debug.SetMemoryLimit(-1); got != pluginMemoryLimit {
		t.Errorf("memory limit = %d, want %d", got, pluginMemoryLimit)
	}

	t.Setenv("GOMAXPROCS", "2")
	runtime.GOMAXPROCS(2)
	tuneRuntime()
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Errorf("with GOMAXPROCS=2 set, GOMAXPROCS = %d", got)
	}
}
