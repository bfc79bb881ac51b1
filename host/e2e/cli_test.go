package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/eventhost/eventhost/host/internal/testbin"
)

// Running the eventhost binary's commands as a user does, and reading what
// they print.

// cmdResult is how an eventhost command ended.
type cmdResult struct {
	code           int
	stdout, stderr string
}

// runEventhost runs the eventhost binary with args (and env added to the
// test's environment) and fails the test if it does not exit within limit.
func runEventhost(t *testing.T, limit time.Duration, env []string, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, testbin.Eventhost(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cmdResult{stdout: stdout.String(), stderr: stderr.String()}
	if ctx.Err() != nil {
		t.Fatalf("eventhost %s did not exit within %s\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), limit, res.stdout, res.stderr)
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	default:
		t.Fatalf("run eventhost: %v", err)
	}
	return res
}

// mustRun runs eventhost with args and fails the test unless it exits with
// code.
func mustRun(t *testing.T, code int, args ...string) cmdResult {
	t.Helper()
	res := runEventhost(t, 2*time.Minute, nil, args...)
	if res.code != code {
		t.Fatalf("eventhost %s exited %d, want %d\nstdout:\n%s\nstderr:\n%s",
			strings.Join(args, " "), res.code, code, res.stdout, tail(res.stderr, 40))
	}
	return res
}

// mustRunOK runs an eventhost command and fails the test unless it exits 0.
func mustRunOK(t *testing.T, args ...string) cmdResult {
	t.Helper()
	res := runEventhost(t, 60*time.Second, nil, args...)
	if res.code != 0 {
		t.Fatalf("eventhost %v exited %d\nstdout:\n%s\nstderr:\n%s", args, res.code, res.stdout, res.stderr)
	}
	return res
}

// wantLine fails the test unless out holds line as one of its lines.
func wantLine(t *testing.T, out, line string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if l == line {
			return
		}
	}
	t.Errorf("output lacks the line %q:\n%s", line, out)
}
