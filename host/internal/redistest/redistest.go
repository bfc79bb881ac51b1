// Package redistest starts private redis-server processes for tests, on free
// ports, so tests can kill and restart them without touching a shared Redis.
package redistest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is a private redis-server.
type Server struct {
	t    testing.TB
	Addr string
	dir  string
	args []string
	cmd  *exec.Cmd
	// exited is closed once cmd has been waited for.
	exited <-chan struct{}
	// tls is how clients reach a StartTLS server; nil for plain TCP.
	tls *tls.Config
}

// Start launches redis-server on a free port with extra arguments (for
// example "--appendonly", "yes"), and stops it when the test ends. A missing
// redis-server fails the test: CI must provide it.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	return StartWrapped(t, nil, extra...)
}

// StartWrapped is Start with redis-server run by wrap, a command line that
// takes the program to run as its last argument: "nice", "-n", "-15" gives
// Redis the CPU before the processes it serves (as its own machine would).
func StartWrapped(t testing.TB, wrap []string, extra ...string) *Server {
	t.Helper()
	return start(t, nil, wrap, func(port string) []string { return []string{"--port", port} }, extra)
}

// start launches redis-server with listen's arguments for a free port, the
// common ones and extra, as an argument of wrap when wrap is not empty (a
// program that runs it, such as valgrind); tc is how to reach it (nil: plain
// TCP). Under go test -short it skips the test: make test-short runs no
// server.
//
// A port found free can be taken by another process before redis-server
// binds it; redis-server then exits at once, and start tries another port.
func start(t testing.TB, tc *tls.Config, wrap []string, listen func(port string) []string, extra []string) *Server {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test (starts redis-server): runs in make test")
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed (apt-get install redis-server; .ci/run does this): %v", err)
	}
	s := &Server{t: t, dir: t.TempDir(), tls: tc}
	t.Cleanup(s.Stop)
	const tries = 5
	for try := 1; ; try++ {
		port := strconv.Itoa(freePort(t))
		s.Addr = "127.0.0.1:" + port
		s.args = append(append(append([]string(nil), wrap...), bin), listen(port)...)
		s.args = append(s.args, "--bind", "127.0.0.1", "--save", "",
			"--appendonly", "no", "--dir", s.dir, "--logfile", filepath.Join(s.dir, "redis.log"))
		s.args = append(s.args, extra...)
		err := s.launch()
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || try == tries {
			t.Fatal(err)
		}
	}
}

// errPortTaken is launch's error when redis-server could not bind its port.
var errPortTaken = errors.New("port taken")

// start (re)starts the server with its arguments, and fails the test if it
// does not answer.
func (s *Server) start() {
	s.t.Helper()
	if err := s.launch(); err != nil {
		s.t.Fatal(err)
	}
}

// launch starts redis-server with s.args and waits until it answers PING.
func (s *Server) launch() error {
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	exited := make(chan struct{})
	cmd := s.cmd
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.exited = exited
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, TLSConfig: s.tls})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		err := c.Ping(ctx).Err()
		if err == nil || strings.HasPrefix(err.Error(), "NOAUTH") {
			return nil
		}
		log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
		select {
		case <-exited:
			s.cmd = nil
			if strings.Contains(string(log), "Address already in use") {
				_ = os.Remove(filepath.Join(s.dir, "redis.log"))
				return fmt.Errorf("redis-server on %s: %w", s.Addr, errPortTaken)
			}
			return fmt.Errorf("redis-server on %s exited at start:\n%s", s.Addr, log)
		case <-ctx.Done():
			return fmt.Errorf("redis-server on %s did not answer within 10s: %v\n%s", s.Addr, err, log)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Client returns a client for the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, TLSConfig: s.tls})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *Server) Kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		<-s.exited
		s.cmd = nil
	}
}

// Restart kills the server and starts it again on the same port and data
// directory.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.start()
}

// Stop is Kill; safe to call twice.
func (s *Server) Stop() { s.Kill() }

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
