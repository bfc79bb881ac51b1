// Package pluginhost runs plugin processes for the host: it checks and
// launches a plugin binary through go-plugin, hands it its config, calls it
// batch by batch, and relaunches it with backoff when it crashes or hangs.
package pluginhost

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/hcl/v2"
	"google.golang.org/grpc"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/policy"
	"github.com/eventhost/eventhost/host/sandbox"
	"github.com/eventhost/eventhost/sdk"
	"github.com/eventhost/eventhost/sdk/client"
)

// process is one running plugin process.
type process struct {
	client *plugin.Client
	rpc    *client.Client
	// sockets is the process' private directory (its socket and TMPDIR),
	// removed with it.
	sockets string
}

func (p *process) kill() {
	if p == nil {
		return
	}
	if p.rpc != nil {
		// The batch stream ends with the process anyway (go-plugin's
		// shutdown stops the server hard: TestStopWithAnOpenStreamIsQuick);
		// closing it first ends it from this side, not as a broken one.
		p.rpc.Close()
	}
	if p.client != nil {
		p.client.Kill()
	}
	if p.sockets != "" {
		_ = os.RemoveAll(p.sockets)
	}
}

// passedEnv is what a plugin inherits from the host's environment: locale,
// time zone and the Go runtime's knobs. Nothing else, because the host's
// environment is where env() in the config reads secrets from, and plugins
// get no Redis credentials. Settings belong in the plugin's config block.
var passedEnv = []string{"PATH", "HOME", "TZ", "ZONEINFO", "LANG", "LC_ALL", "GODEBUG", "GOTRACEBACK", "GOMAXPROCS", "GOMEMLIMIT", "GOCOVERDIR"}

// pluginEnv is the environment of a plugin process: the passedEnv part of
// host (an os.Environ list), the socket directory for go-plugin, and TMPDIR,
// the only directory beneath it the plugin may write.
func pluginEnv(host []string, sockets string) []string {
	var out []string
	for _, kv := range host {
		name, _, _ := strings.Cut(kv, "=")
		if slices.Contains(passedEnv, name) || strings.HasPrefix(name, "LC_") {
			out = append(out, kv)
		}
	}
	return append(out, plugin.EnvUnixSocketDir+"="+sockets, "TMPDIR="+sandbox.TempDir(sockets))
}

// CheckBinary returns why the binary at path cannot be launched: missing, not
// a regular executable file, open to changes by users other than the host's
// (see checkWriters), or not matching its sha256 pin.
func CheckBinary(name, path, pin string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("plugin %s: binary %s: %w", name, path, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("plugin %s: binary %s is not an executable file (mode %s)", name, path, fi.Mode())
	}
	if err := checkWriters(path); err != nil {
		return fmt.Errorf("plugin %s: %w", name, err)
	}
	if pin == "" {
		return nil
	}
	got, err := BinarySHA256(path)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", name, err)
	}
	if got != pin {
		return fmt.Errorf("plugin %s: binary %s has sha256 %s, but the config pins %s", name, path, got, pin)
	}
	return nil
}

// checkWriters refuses a binary that a user other than the host's own (or
// root) could change, and so make the host run their code: the file must be
// owned by the host's euid or root and not group- or world-writable, and so
// must the directory holding it, unless that directory is sticky (like
// /tmp: others may add files there but not replace ours). A symlink is
// followed, and the directory holding the link is checked too, since whoever
// can write there can point the link elsewhere.
func checkWriters(path string) error {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return fmt.Errorf("binary %s: %w", path, err)
	}
	if err := checkOwnerAndMode("binary", real, false); err != nil {
		return err
	}
	dirs := []string{filepath.Dir(real)}
	if link := filepath.Dir(path); real != path && link != dirs[0] {
		dirs = append(dirs, link)
	}
	for _, d := range dirs {
		if err := checkOwnerAndMode("directory", d, true); err != nil {
			return fmt.Errorf("binary %s: %w", path, err)
		}
	}
	return nil
}

func checkOwnerAndMode(what, path string, dir bool) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, path, err)
	}
	mode := fi.Mode()
	if mode.Perm()&0o022 != 0 && !(dir && mode&os.ModeSticky != 0) {
		return fmt.Errorf("%s %s is group- or world-writable (mode %s), so another user could change the plugin's code; run chmod go-w %s",
			what, path, mode, path)
	}
	if uid, ok := ownerUID(fi); ok && uid != 0 && uid != os.Geteuid() {
		return fmt.Errorf("%s %s is owned by uid %d, not by the host's user (uid %d) or root; run chown %d %s, or install it as root",
			what, path, uid, os.Geteuid(), os.Geteuid(), path)
	}
	return nil
}

// BinarySHA256 is the hex sha256 of the file at path, as sha256sum prints it
// and a sha256 pin states it.
func BinarySHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// start launches the plugin binary inside the sandbox (see host/sandbox)
// and connects to it. socketDir holds the plugins' private directories; it
// should be private to the host.
func start(ctx context.Context, cfg config.Plugin, logger hclog.Logger, socketDir string) (*process, error) {
	if err := CheckBinary(cfg.Name, cfg.Path, cfg.SHA256); err != nil {
		return nil, err
	}
	// Planned at every launch (start, reload, relaunch, validate), so
	// sandbox { require = true } holds for each of them.
	plan, err := sandbox.Probe(cfg.Sandbox, os.Environ())
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", cfg.Name, err)
	}
	if cfg.Sandbox.Require {
		if err := plan.Require(); err != nil {
			return nil, fmt.Errorf("plugin %s: %w", cfg.Name, err)
		}
	}
	// Each process gets a directory of its own, inside the host's private
	// socketDir, for its socket (go-plugin's plugin side creates it where
	// PLUGIN_UNIX_SOCKET_DIR says) and its TMPDIR.
	sockets, err := sandbox.PrivateDir(plan, socketDir, cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", cfg.Name, err)
	}
	cmd, err := sandbox.Command(plan, sandbox.Spec{Binary: cfg.Path, SHA256: cfg.SHA256, Dir: sockets, ReadPaths: cfg.ReadPaths})
	if err != nil {
		_ = os.RemoveAll(sockets)
		return nil, fmt.Errorf("plugin %s: %w", cfg.Name, err)
	}
	cmd.Env = pluginEnv(os.Environ(), sockets)
	socketCfg := &plugin.UnixSocketConfig{TempDir: socketDir}
	if plan.GID >= 0 {
		// The plugin's user owns its socket; the group lets the host in.
		socketCfg.Group = strconv.Itoa(plan.GID)
	}
	cc := &plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake(),
		Plugins:          plugin.PluginSet{sdk.PluginKey: &sdk.GRPCPlugin{}},
		Cmd:              cmd,
		SkipHostEnv:      true, // the host's environment may hold its Redis password
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		Logger:           logger,
		UnixSocketConfig: socketCfg,
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(sdk.MaxMessageBytes), grpc.MaxCallSendMsgSize(sdk.MaxMessageBytes))},
	}
	if cfg.SHA256 != "" && runtime.GOOS != "linux" {
		sum, _ := hex.DecodeString(cfg.SHA256)
		// Checked again by go-plugin right before exec, so a binary swapped
		// after CheckBinary is still refused. On Linux the launcher checks
		// the pin on the very file it executes instead (go-plugin would
		// hash the launcher).
		cc.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	pc := plugin.NewClient(cc)
	p := &process{client: pc, sockets: sockets}
	rpcClient, err := pc.Client()
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("plugin %s: start %s: %w", cfg.Name, cfg.Path, err)
	}
	raw, err := rpcClient.Dispense(sdk.PluginKey)
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("plugin %s: connect: %w", cfg.Name, err)
	}
	if p.rpc, err = client.FromDispensed(raw); err != nil {
		p.kill()
		return nil, fmt.Errorf("plugin %s: %w", cfg.Name, err)
	}
	return p, ctx.Err()
}

// Prepared is a plugin that was launched, described itself and accepted its
// config.
type Prepared struct {
	Description sdk.Description
	Values      map[string]any
	proc        *process
}

// ConfigError carries the HCL diagnostics of a plugin's config block.
type ConfigError struct {
	Diags hcl.Diagnostics
}

func (e *ConfigError) Error() string { return e.Diags.Error() }

// prepare launches the plugin, checks its description against the block,
// decodes the block's config against the schema and configures it. A config
// problem comes back as a *ConfigError with diagnostics at the offending
// lines.
func prepare(ctx context.Context, cfg config.Plugin, logger hclog.Logger, socketDir string) (*Prepared, error) {
	proc, err := start(ctx, cfg, logger, socketDir)
	if err != nil {
		return nil, err
	}
	desc, err := proc.rpc.Describe(ctx)
	if err != nil {
		proc.kill()
		return nil, fmt.Errorf("plugin %s: %w", cfg.Name, err)
	}
	if desc.Name != cfg.Name {
		proc.kill()
		return nil, &ConfigError{Diags: hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "Plugin name mismatch", Subject: &cfg.Range,
			Detail: fmt.Sprintf("The block is plugin %q, but %s describes itself as %q.", cfg.Name, cfg.Path, desc.Name),
		}}}
	}
	if len(desc.Keys) == 0 {
		proc.kill()
		return nil, fmt.Errorf("plugin %s: declares no key patterns, so it could write nothing", cfg.Name)
	}
	if bad := policy.UnreachableAllowKeys(desc.Keys, cfg.AllowKeys); len(bad) > 0 {
		proc.kill()
		subject := cfg.AllowKeysRange
		if subject == nil {
			subject = &cfg.Range
		}
		return nil, &ConfigError{Diags: hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: "allow_keys pattern matches no declared key", Subject: subject,
			Detail: fmt.Sprintf("Plugin %q declares the key patterns %q; allow_keys %q can never match one of them, so it only hides a mistake. Correct or remove it.",
				cfg.Name, desc.Keys, bad),
		}}}
	}
	values, diags := config.DecodePluginConfig(cfg, desc.Config)
	if diags.HasErrors() {
		proc.kill()
		return nil, &ConfigError{Diags: diags}
	}
	if err := configure(ctx, proc, cfg, values); err != nil {
		proc.kill()
		return nil, err
	}
	// The views may depend on the settings: read them as configured.
	configured, err := proc.rpc.Describe(ctx)
	if err != nil {
		proc.kill()
		return nil, fmt.Errorf("plugin %s: after configure: %w", cfg.Name, err)
	}
	desc.Views = configured.Views
	return &Prepared{Description: desc, Values: values, proc: proc}, nil
}

func configure(ctx context.Context, proc *process, cfg config.Plugin, values map[string]any) error {
	fieldErrs, err := proc.rpc.Configure(ctx, values)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", cfg.Name, err)
	}
	if len(fieldErrs) > 0 {
		return &ConfigError{Diags: config.FieldErrorDiagnostics(cfg, fieldErrs)}
	}
	return nil
}

// Validate launches the plugin, checks its config block and stops it again,
// processing nothing.
func Validate(ctx context.Context, cfg config.Plugin, logger hclog.Logger, socketDir string) (sdk.Description, error) {
	p, err := prepare(ctx, cfg, logger, socketDir)
	if err != nil {
		return sdk.Description{}, err
	}
	p.proc.kill()
	return p.Description, nil
}

// AsConfigError returns the diagnostics in err, if it carries any.
func AsConfigError(err error) (hcl.Diagnostics, bool) {
	var ce *ConfigError
	if errors.As(err, &ce) {
		return ce.Diags, true
	}
	return nil, false
}
