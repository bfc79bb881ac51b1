package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/eventhost/eventhost/host/internal/redistest"
)

// Config files for the scenarios: writeConfig's, rewritten for other Redis
// set-ups (ACL users, Cluster) and for the stream source.

// deadLetterStream is the default dead-letter stream of writeConfig's config.
const deadLetterStream = "eventhost:deadletter"

// replaceInConfig writes a copy of the config at path with old (which must
// occur) replaced by new, and returns the copy's path.
func replaceInConfig(t *testing.T, path, old, new string) string {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(src), old) {
		t.Fatalf("config %s has no %s", path, old)
	}
	out := filepath.Join(t.TempDir(), "eventhost.hcl")
	if err := os.WriteFile(out, []byte(strings.Replace(string(src), old, new, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return out
}

// withRedisBlock rewrites the redis block of the config at path (as written by
// writeConfig for addr) to hold attrs too, and returns the new file's path.
func withRedisBlock(t *testing.T, path, addr, attrs string) string {
	t.Helper()
	return replaceInConfig(t, path, fmt.Sprintf("redis { address = %q }", addr),
		fmt.Sprintf("redis {\n  address = %q\n  %s\n}", addr, attrs))
}

const streamGroup = "eventhost"

// streamConfig is writeConfig with source "stream" (claim_idle short, so a
// dead host's entries move on quickly) and a metrics endpoint (see
// host.metricsAddr).
func streamConfig(t *testing.T, srv *redistest.Server, extra string) string {
	t.Helper()
	path := writeConfig(t, srv, "u8", metricsBlock+extra)
	return toStreamSource(t, path, 3)
}

// toStreamSource replaces writeConfig's Pub/Sub source in the config at
// path with source "stream" on the same key, claim_idle 1s (a dead host's
// entries move on quickly) and maxDeliveries.
func toStreamSource(t *testing.T, path string, maxDeliveries int) string {
	t.Helper()
	return replaceInConfig(t, path, fmt.Sprintf("source \"pubsub\" { channels = [%q] }", channel),
		fmt.Sprintf(`source "stream" {
  stream         = %q
  group          = %q
  claim_idle     = "1s"
  max_deliveries = %d
}`, channel, streamGroup, maxDeliveries))
}

// clusterConfig is writeConfig's config (u8 counters) for the cluster cl,
// on source "stream" (key purchase_orders, one node) or Pub/Sub.
func clusterConfig(t *testing.T, cl *redistest.Cluster, stream bool, extra string) string {
	t.Helper()
	placeholder := &redistest.Server{Addr: "cluster.invalid:1"}
	path := onCluster(t, writeConfig(t, placeholder, "u8", extra), placeholder, cl)
	if stream {
		path = toStreamSource(t, path, 1000)
	}
	return path
}

// onCluster rewrites the config at path (written by writeConfig for a
// placeholder server) to talk to the cluster cl instead.
func onCluster(t *testing.T, path string, placeholder *redistest.Server, cl *redistest.Cluster) string {
	t.Helper()
	return replaceInConfig(t, path, fmt.Sprintf("redis { address = %q }", placeholder.Addr),
		fmt.Sprintf("redis {\n  cluster { addresses = [%s] }\n}", quoteList(cl.Addrs())))
}

// quoteList renders addrs as the items of an HCL list.
func quoteList(addrs []string) string {
	q := make([]string, len(addrs))
	for i, a := range addrs {
		q[i] = strconv.Quote(a)
	}
	return strings.Join(q, ", ")
}
