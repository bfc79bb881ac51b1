package e2e

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/internal/redistest"
	"github.com/eventhost/eventhost/host/publish"
)

// debianPython is the interpreter the example's #! line names; Debian's
// python3-grpcio, python3-protobuf and python3-cryptography install into
// its system directories, which the sandbox lets every plugin read.
const debianPython = "/usr/bin/python3"

// TestPythonPlugin runs examples/python-plugin through the real host, inside
// the plugin sandbox, next to the bundled plugins, as the Go plugins are
// tested: publish orders, wait for every done marker, and compare the exact
// Redis state the Python plugin wrote with what its rule gives.
func TestPythonPlugin(t *testing.T) {
	if out, err := exec.Command(debianPython, "-c", "import grpc, google.protobuf, cryptography").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("%s cannot import grpc, protobuf and cryptography (apt-get install python3-grpcio python3-protobuf python3-cryptography): %v\n%s", debianPython, err, out)
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	srv := redistest.Start(t)
	rdb := srv.Client()
	dir := copyPythonPlugin(t)
	cfg := writeConfig(t, srv, "u8", fmt.Sprintf(`
plugin "py-tickets" {
  path       = %q
  read_paths = [%q]   # its SDK module and generated stubs
  config {
    min_qty = 3
  }
}
`, filepath.Join(dir, "eventhost-plugin-py-tickets"), dir))
	h := startHost(t, rdb, cfg)

	orders, err := publish.NewPublisher(rdb, channel, orderPrefix).PublishMany(context.Background(), publish.NewGenerator(12), 400, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, rdb, ids(orders), append([]string{"py-tickets"}, bundled...), 90*time.Second)

	want := map[string]value{}
	tickets := map[string]int64{}
	buyers := map[string][]string{}
	for _, o := range orders {
		if o.Qty < 3 {
			continue
		}
		tickets[o.Event] += o.Qty
		buyers[o.Event] = append(buyers[o.Event], o.Who)
	}
	var lines []string
	for event, n := range tickets {
		lines = append(lines, event+"="+strconv.FormatInt(n, 10))
	}
	sort.Strings(lines)
	want["py_tickets"] = value{Type: "hash", Data: strings.Join(lines, "\n")}
	for event, who := range buyers {
		want["py_buyers:"+event] = value{Type: "set", Data: strings.Join(dedupe(sortedCopy(who)), "\n")}
	}
	if len(tickets) < 5 {
		t.Fatalf("only %d events have orders of 3 or more tickets: the test shows little", len(tickets))
	}
	got := dump(t, rdb, "py_*")
	diffState(t, got, want)
	// The bundled plugins beside it are exact too, once its keys are gone.
	for k := range got {
		must(t, rdb.Del(context.Background(), k).Err())
	}
	checkTutorialState(t, rdb, orders)

	// The plugin's own log lines reach the host's log under its name, and
	// a clean stop stops it without a kill.
	if code := h.stop(t); code != 0 {
		t.Errorf("eventhost exited %d after SIGTERM", code)
	}
	if log := h.log.String(); !strings.Contains(log, "eventhost.py-tickets: plugin started: version=1.0.0") {
		t.Errorf("the host's log does not show py-tickets starting:\n%s", tail(log, 30))
	}
}

// copyPythonPlugin copies examples/python-plugin into a directory of its own
// that every user may read (the plugin runs as another user and imports its
// modules by path), and returns it.
func copyPythonPlugin(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "eventhost-python-plugin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	must(t, os.Chmod(dir, 0o755))
	src := filepath.Join(repoRoot, "examples/python-plugin")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || !(strings.HasSuffix(e.Name(), ".py") || strings.HasPrefix(e.Name(), "eventhost-plugin-")) {
			continue
		}
		in, err := os.Open(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.OpenFile(filepath.Join(dir, e.Name()), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(out, in)
		in.Close()
		must(t, err)
		must(t, out.Close())
		must(t, os.Chmod(out.Name(), 0o755)) // whatever the umask
	}
	return dir
}
