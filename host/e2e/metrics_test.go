package e2e

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Reading the host's Prometheus endpoint (see metricsBlock and
// host.metricsAddr).

// scrapeMetric reads series (name{labels} exactly as the text format prints
// it, labels sorted) from the Prometheus endpoint at addr; ok is false when
// the endpoint does not show it.
func scrapeMetric(t *testing.T, addr, series string) (v float64, ok bool) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape metrics: %s: %s", resp.Status, body)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		rest, found := strings.CutPrefix(sc.Text(), series+" ")
		if !found {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", sc.Text(), err)
		}
		return v, true
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape metrics: %v", err)
	}
	return 0, false
}

// checkMetric waits until series reaches want (counters lag the Redis
// writes they count by a moment) and fails if it ends anywhere else.
func checkMetric(t *testing.T, addr, series string, want float64) {
	t.Helper()
	var got float64
	var ok bool
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, ok = scrapeMetric(t, addr, series)
		if (ok && got >= want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	switch {
	case !ok && want != 0:
		t.Errorf("metric %s is not exported, want %v", series, want)
	case got != want:
		t.Errorf("metric %s = %v, want %v", series, got, want)
	}
}
