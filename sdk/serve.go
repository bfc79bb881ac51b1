package sdk

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"

	"github.com/eventhost/eventhost/sdk/internal/bufpool"
	"github.com/eventhost/eventhost/sdk/proto/pluginv1"
)

// Logger is the logger a plugin writes to; see Logging.
type Logger = hclog.Logger

// ProtocolVersion is the version of the host/plugin protocol. A host refuses a
// plugin built against another version, with a message naming both.
const ProtocolVersion = 1

// PluginKey is the name under which the plugin is served in go-plugin's set.
const PluginKey = "eventhost"

// MaxMessageBytes raises gRPC's 4 MB default: a batch of thousands of orders
// with extra fields, or a plugin writing many effects per order, exceeds it.
const MaxMessageBytes = 256 << 20

// Handshake returns the go-plugin handshake both sides must agree on. The
// cookie only keeps people from running a plugin by hand by mistake; it is
// not a security measure.
func Handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{
		ProtocolVersion:  ProtocolVersion,
		MagicCookieKey:   "EVENTHOST_PLUGIN",
		MagicCookieValue: "7d4c1a1e-olympics-2020-purchase-orders",
	}
}

// GRPCPlugin adapts a Plugin to go-plugin. The host uses it with a nil Impl to
// get a client; Serve uses it with the plugin.
type GRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	Impl Plugin
}

var _ plugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the plugin's gRPC service.
func (p *GRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterPluginServer(s, newServer(p.Impl))
	return nil
}

// GRPCClient returns the raw gRPC client; sdk/client wraps it for the host.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return pluginv1.NewPluginClient(c), nil
}

// Serve runs p as a plugin process and returns when the host is gone. It is
// the whole of a plugin's main function:
//
//	func main() { sdk.Serve(&myPlugin{}) }
func Serve(p Plugin) {
	logger := hclog.New(&hclog.LoggerOptions{
		Output:     os.Stderr,
		JSONFormat: true, // go-plugin parses JSON lines and re-logs them under the plugin's name
		Level:      hclog.Trace,
	})
	if l, ok := p.(Logging); ok {
		l.SetLogger(logger)
	}
	go exitWhenOrphaned(logger)
	tuneRuntime()
	// Message buffers sized for batches (see bufpool: gRPC's own pool
	// gives each batch 1 MiB), for the codec and the server's transport.
	buffers := bufpool.New()
	experimental.SetDefaultBufferPool(buffers)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake(),
		Plugins:         plugin.PluginSet{PluginKey: &GRPCPlugin{Impl: p}},
		Logger:          logger,
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			opts = append(opts, grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes),
				experimental.BufferPool(buffers))
			return grpc.NewServer(opts...)
		},
	})
}

// pluginGCPercent is the GC target a plugin runs with unless GOGC says
// otherwise. A plugin's live heap is tiny while every batch allocates afresh,
// so at Go's default of 100 it collects several times a batch: measured,
// that was the largest part of a plugin's CPU. The host is on the same
// machine and, at 2 cores, every cycle a plugin spends is one the host and
// Redis do not get.
const pluginGCPercent = 400

// pluginMemoryLimit is the soft memory limit a plugin runs with unless
// GOMEMLIMIT says otherwise: with GOGC at 400 the heap would otherwise grow
// to five times what a batch keeps live. Past it the collector works harder;
// nothing fails.
const pluginMemoryLimit = 12 << 20

// pluginProcs is the number of threads running Go code in a plugin unless
// GOMAXPROCS says otherwise. A plugin handles one batch at a time, one
// order after the other: more processors only add scheduling work. With
// one per core, gRPC's goroutines hand each batch from processor to
// processor, waking and spinning idle threads; measured on 2 cores, that
// was more than half of a bundled plugin's CPU.
const pluginProcs = 1

func tuneRuntime() {
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(pluginProcs)
	}
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(pluginGCPercent)
	}
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(pluginMemoryLimit)
	}
}

// exitWhenOrphaned ends the plugin when its host dies without stopping it
// (SIGKILL, OOM). The host also asks the kernel for this (Pdeathsig); this is
// the fallback for platforms and launchers without it.
func exitWhenOrphaned(logger hclog.Logger) {
	parent := os.Getppid()
	for range time.Tick(time.Second) {
		if os.Getppid() != parent {
			logger.Warn("host process is gone; exiting")
			os.Exit(3)
		}
	}
}
