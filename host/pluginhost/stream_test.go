package pluginhost

import (
	"testing"
	"time"
)

// A plugin whose batch stream is open (it answered a batch) stops at once:
// go-plugin's Kill waits up to 2 s for a graceful exit before it kills.
func TestStopWithAnOpenStreamIsQuick(t *testing.T) {
	t.Parallel()
	in, _ := launchPoison(t, 5)
	orders := batch(4, nil)
	results, err := in.Process(t.Context(), orders)
	if err != nil {
		t.Fatal(err)
	}
	wantRecorded(t, orders, results, nil)
	start := time.Now()
	in.Stop()
	d := time.Since(start)
	t.Logf("Stop took %s", d.Round(time.Millisecond))
	if d > time.Second {
		t.Errorf("Stop took %s with the stream open, want well under the 2 s of a forced kill", d.Round(time.Millisecond))
	}
}
