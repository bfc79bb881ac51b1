package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/eventhost/eventhost/sdk"
)

// Keys written.
const (
	KeyPattern = "hostile:*"
	// KeyOrders is the set of orders processed: the plugin's normal work.
	KeyOrders = "hostile:orders"
	// KeyResults is the set of "<phase> <attempt> <outcome>" lines, phase
	// "start" (at Configure) or "order", outcome "refused" or "ESCAPED"
	// ("ok" or "failed" for the control attempt, which must work).
	KeyResults = "hostile:results"
	// KeyErrors holds, per "<phase> <attempt>", the error of the last try:
	// why it was refused.
	KeyErrors = "hostile:errors"
)

// Config field names: the targets the host's test points it at.
const (
	FieldConfigFile = "config_file"
	FieldEnvFile    = "env_file"
	FieldSecretFile = "secret_file"
	FieldRedisAddr  = "redis_addr"
	FieldPluginDir  = "plugin_dir"
	// FieldRefuse makes Configure fail, naming every attempt that worked:
	// how `eventhost validate`, which processes no order, shows whether
	// it launched the plugin inside the sandbox.
	FieldRefuse = "refuse_if_escaped"
)

// Control is the attempt that must succeed: writing into its own TMPDIR.
const Control = "write_tmpdir"

// Attempts lists every escape the plugin tries, in order.
var Attempts = []string{
	"read_host_environ", "read_host_mem", "read_config", "read_env_file", "read_secret",
	"list_plugin_dir", "write_beside_binary", "connect_redis_tcp", "bind_tcp_port", "bind_udp_port",
	"exec_sh", "setuid_root", "signal_host",
}

type hostile struct {
	targets map[string]string
	// start holds the outcomes of the attempts made at Configure.
	start map[string]error
}

var _ sdk.Plugin = (*hostile)(nil)

// Describe implements sdk.Plugin.
func (*hostile) Describe() sdk.Description {
	var fields []sdk.Field
	for _, f := range []string{FieldConfigFile, FieldEnvFile, FieldSecretFile, FieldRedisAddr, FieldPluginDir} {
		fields = append(fields, sdk.Field{Name: f, Type: sdk.TypeString, Default: "", Doc: "a target to try to reach"})
	}
	fields = append(fields, sdk.Field{Name: FieldRefuse, Type: sdk.TypeBool, Default: false, Doc: "fail Configure if an escape worked"})
	return sdk.Description{Name: "hostile", Version: "0.0.0-test", Keys: []string{KeyPattern}, Config: fields}
}

// Configure implements sdk.Plugin: the first round of attempts.
func (h *hostile) Configure(cfg sdk.Config) error {
	h.targets = map[string]string{}
	for _, f := range []string{FieldConfigFile, FieldEnvFile, FieldSecretFile, FieldRedisAddr, FieldPluginDir} {
		h.targets[f] = cfg.String(f)
	}
	h.start = h.try()
	if cfg.Bool(FieldRefuse) {
		var escaped []string
		for _, a := range Attempts {
			if h.start[a] == nil {
				escaped = append(escaped, a)
			}
		}
		if len(escaped) > 0 {
			return sdk.FieldErrorf(FieldRefuse, "escaped the sandbox: %s", strings.Join(escaped, ", "))
		}
	}
	return nil
}

// Handle implements sdk.Plugin: the order is recorded, and every attempt
// made again.
func (h *hostile) Handle(o sdk.Order, out *sdk.Effects) error {
	out.SAdd(KeyOrders, o.ID)
	report(out, "start", h.start)
	report(out, "order", h.try())
	return nil
}

func report(out *sdk.Effects, phase string, results map[string]error) {
	for name, err := range results {
		outcome := "refused"
		switch {
		case name == Control && err == nil:
			outcome = "ok"
		case name == Control:
			outcome = "failed"
		case err == nil:
			outcome = "ESCAPED"
		}
		out.SAdd(KeyResults, phase+" "+name+" "+outcome)
		msg := "<nil>"
		if err != nil {
			msg = err.Error()
		}
		out.HSet(KeyErrors, phase+" "+name, msg)
	}
}

// try makes every attempt and returns each one's error (nil: it worked).
// What an attempt reads is never reported, only whether it could.
func (h *hostile) try() map[string]error {
	host := strconv.Itoa(os.Getppid())
	r := map[string]error{}
	r["read_host_environ"] = readSome(filepath.Join("/proc", host, "environ"))
	// Opening mem is the check (ptrace access); reading needs an address.
	r["read_host_mem"] = closeIt(os.Open(filepath.Join("/proc", host, "mem")))
	r["read_config"] = readSome(h.targets[FieldConfigFile])
	r["read_env_file"] = readSome(h.targets[FieldEnvFile])
	r["read_secret"] = readSome(h.targets[FieldSecretFile])
	_, r["list_plugin_dir"] = os.ReadDir(h.targets[FieldPluginDir])
	r["write_beside_binary"] = os.WriteFile(filepath.Join(filepath.Dir(os.Args[0]), "hostile-was-here"), []byte("x"), 0o644)
	r["connect_redis_tcp"] = closeIt(net.DialTimeout("tcp", h.targets[FieldRedisAddr], time.Second))
	r["bind_tcp_port"] = closeIt(net.Listen("tcp", "127.0.0.1:0"))
	r["bind_udp_port"] = closeIt(net.ListenPacket("udp", "127.0.0.1:0"))
	r["exec_sh"] = exec.Command("/bin/sh", "-c", "exit 0").Run()
	r["setuid_root"] = syscall.Setuid(0)
	r["signal_host"] = syscall.Kill(os.Getppid(), 0)
	r[Control] = os.WriteFile(filepath.Join(os.Getenv("TMPDIR"), "scratch"), []byte("x"), 0o600)
	return r
}

func readSome(path string) error {
	if path == "" {
		return errors.New("no target configured")
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Read(make([]byte, 1)); err != nil {
		return fmt.Errorf("opened, but: %w", err)
	}
	return nil
}

func closeIt[T interface{ Close() error }](c T, err error) error {
	if err != nil {
		return err
	}
	return c.Close()
}
