// Package config reads eventhost's HCL configuration file. Decoding and
// validation happen once, up front; every error is an HCL diagnostic naming
// the file, line and column.
package config

import (
	"fmt"
	"hash/fnv"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/host/policy"
)

// PluginBinaryPrefix is how a plugin without an explicit path is found:
// plugin "NAME" {} runs <plugin_dir>/eventhost-plugin-NAME.
const PluginBinaryPrefix = "eventhost-plugin-"

// Defaults for settings the file may leave out.
const (
	DefaultRedisAddress     = "127.0.0.1:6379"
	DefaultChannel          = "purchase_orders"
	DefaultOrderKeyPrefix   = "purchase_order_details:"
	DefaultDeadLetterStream = "eventhost:deadletter"
	DefaultMaxOrders        = 512
	DefaultMaxWait          = 0 // a batch goes out as soon as the pipeline can take it
	DefaultPluginTimeout    = 10 * time.Second
	DefaultMaxAttempts      = 3
	DefaultRestartLimit     = 5
	DefaultRestartWindow    = time.Minute
	// DefaultDeadLetterMaxLen bounds the dead-letter stream: anyone who can
	// PUBLISH can add to it. A person reads the newest; 100,000 entries of
	// at most a few KiB each cannot exhaust Redis.
	DefaultDeadLetterMaxLen = 100_000
)

// LogLevels are the values log.level accepts, quietest last.
var LogLevels = []string{"trace", "debug", "info", "warn", "error", "off"}

// Config is a decoded, validated configuration.
type Config struct {
	// Filename is the file it came from; relative paths in it are relative to
	// its directory.
	Filename       string
	PluginDir      string
	OrderKeyPrefix string
	Redis          Redis
	Source         Source
	Batch          Batch
	DeadLetter     DeadLetter
	Log            Log
	Metrics        Metrics
	Sandbox        Sandbox
	UI             UI
	// Limits bound every order before any plugin sees it.
	Limits orders.Limits
	// EffectLimits bound what one plugin may write for one order.
	EffectLimits policy.Limits
	Plugins      []Plugin
}

// DefaultPluginUser is the account plugins run as when the host may switch
// users (root, or CAP_SETUID and CAP_SETGID) and the config names none; the
// shipped sysusers file creates it. Without it, FallbackPluginUser is used.
const (
	DefaultPluginUser  = "eventhost-plugin"
	FallbackPluginUser = "nobody"
)

// Sandbox is the sandbox block: how plugin processes are confined (see
// host/sandbox).
type Sandbox struct {
	// PluginUser is the account plugins run as when the host may switch
	// users; empty means DefaultPluginUser, else FallbackPluginUser.
	PluginUser string
	// PluginUserRange is where plugin_user stands, for an unknown or
	// privileged account found at launch. Nil when not set.
	PluginUserRange *hcl.Range
	// Require makes every protection the kernel or the host's privileges
	// cannot provide a start-up (and launch) error instead of a warning.
	Require bool
}

// Redis says how to reach Redis. Secrets come from env() or file() in the
// config and are never logged. One of three topologies: a single node at
// Address (Sentinel and Cluster nil), a master found through Sentinel, or a
// Redis Cluster. Username, Password and TLS are the data nodes' in each.
type Redis struct {
	Address     string
	Username    string
	Password    string
	DB          int
	DialTimeout time.Duration
	TLS         *TLS
	// Sentinel, when set, finds the master through Sentinel and follows
	// its failovers.
	Sentinel *Sentinel
	// Cluster, when set, talks to a Redis Cluster found from its seeds.
	Cluster *Cluster
}

// Sentinel is the sentinel block: which master, asked of which sentinels.
// The sentinels may have their own credentials; TLS is the redis block's.
type Sentinel struct {
	MasterName string
	Addresses  []string
	Username   string
	Password   string
}

// Cluster is the cluster block: seed addresses, from which the client
// learns every node and slot, and how many replicas each master's share of
// a batch must reach before the orders are marked done (docs/design.md,
// Redis topologies).
type Cluster struct {
	Addresses []string
	// WaitReplicas is the WAIT count after each master's writes; 0 waits
	// for none. A master with fewer replicas connected is waited for all
	// it has.
	WaitReplicas int
	// WaitTimeout bounds each WAIT; past it the batch is retried.
	WaitTimeout time.Duration
}

// Defaults of the cluster block.
const (
	DefaultClusterWaitReplicas = 1
	DefaultClusterWaitTimeout  = time.Second
)

// String describes the connection without its secrets.
func (r Redis) String() string {
	switch {
	case r.Sentinel != nil:
		return fmt.Sprintf("redis sentinel master %q via %s/%d (user %q, tls %v)", r.Sentinel.MasterName, strings.Join(r.Sentinel.Addresses, ","), r.DB, r.Username, r.TLS != nil)
	case r.Cluster != nil:
		return fmt.Sprintf("redis cluster via %s (user %q, tls %v)", strings.Join(r.Cluster.Addresses, ","), r.Username, r.TLS != nil)
	}
	return fmt.Sprintf("redis://%s/%d (user %q, tls %v)", r.Address, r.DB, r.Username, r.TLS != nil)
}

// TLS configures a TLS connection to Redis.
type TLS struct {
	CAFile, CertFile, KeyFile, ServerName string
	InsecureSkipVerify                    bool
}

// Source is where order ids come from.
type Source struct {
	Kind string // "pubsub" or "stream"
	// Channels are the Pub/Sub channels; for a stream source, the stream's
	// key, so plugin blocks name it in channels the same way.
	Channels []string
	// IDPrefixes maps a Pub/Sub channel to the id prefix of the orders
	// published on it, and on it alone. An order hash does not say where
	// its id was published; with this, catch-up and backfill can tell the
	// channel of a stored order, and give it to the plugins that listen
	// on that channel only. Nil when not set.
	IDPrefixes map[string]string
	// Sharded subscribes with SSUBSCRIBE (sharded Pub/Sub) instead of
	// SUBSCRIBE: on a cluster a sharded channel lives on the node that owns
	// its hash slot, rather than every message going to every node.
	Sharded bool
	// Stream is set for a stream source.
	Stream *Stream
}

// Stream configures the Redis Stream source: a consumer group shared by
// every host reading the stream.
type Stream struct {
	// Key is the stream's key, or with Shards the name the shards' keys
	// are made of (see Keys). It is also the channel plugins listen on.
	Key string
	// Shards, when not 0, spreads the stream over that many keys,
	// Key:{0} … Key:{Shards-1}, whose hash tags put them on different
	// slots, so that a cluster spreads them over its masters.
	Shards   int
	Group    string
	Consumer string
	// ClaimIdle is how long an entry may stay pending with a consumer
	// before another host claims it (XAUTOCLAIM): the consumer died.
	ClaimIdle time.Duration
	// MaxDeliveries is how often an entry may be delivered before it is
	// dead-lettered instead of being tried again.
	MaxDeliveries int
	// Start is where a group created by the host begins: "$" for entries
	// added from now on, "0" for the whole stream.
	Start string
	// MissingHashWait is how long an entry whose order hash is not stored
	// yet stays pending, tried again with backoff, before it is
	// dead-lettered (unmarked, for a replay once the hash exists).
	MissingHashWait time.Duration
}

// Keys returns the stream keys the source reads: Key alone, or one key per
// shard. `eventhost publish` appends an order to KeyFor(id).
func (s Stream) Keys() []string {
	if s.Shards == 0 {
		return []string{s.Key}
	}
	keys := make([]string, s.Shards)
	for i := range keys {
		keys[i] = ShardKey(s.Key, i)
	}
	return keys
}

// ShardKey is the key of shard i of the stream named key.
func ShardKey(key string, i int) string { return fmt.Sprintf("%s:{%d}", key, i) }

// KeyFor returns the stream key that order id goes to: always the same one
// for one id (FNV-1a of the id, modulo Shards), so that a republished id
// lands beside its first entry.
func (s Stream) KeyFor(id string) string {
	if s.Shards == 0 {
		return s.Key
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return ShardKey(s.Key, int(h.Sum32()%uint32(s.Shards)))
}

// StreamIDField is the field of a source stream entry that holds the order
// id: what `eventhost publish` writes and the stream source reads.
const StreamIDField = "id"

// MaxStreamShards bounds shards: every shard holds one connection of each
// host blocked in XREADGROUP on a cluster, out of a pool of 10 per CPU.
const MaxStreamShards = 16

// Stream source defaults.
const (
	DefaultStreamGroup     = "eventhost"
	DefaultClaimIdle       = 30 * time.Second
	DefaultMaxDeliveries   = 5
	DefaultMissingHashWait = 30 * time.Second
)

// Batch bounds how many orders travel together. A batch goes out as soon as
// the pipeline can take it; MaxWait > 0 makes its first id wait up to that
// long for company.
type Batch struct {
	MaxOrders int
	MaxWait   time.Duration
}

// DeadLetter is where orders that cannot be processed go.
type DeadLetter struct {
	Stream string
	// MaxLen trims the stream to about this many entries (approximately:
	// MAXLEN ~); 0, set explicitly, keeps all.
	MaxLen int64
}

// Log configures the host's logger.
type Log struct {
	Level string
	JSON  bool
}

// Metrics configures the Prometheus endpoint; an empty Listen disables it.
type Metrics struct {
	Listen string
	// Pprof also serves Go's profiler under /debug/pprof/ on Listen.
	Pprof bool
}

// UI configures the live dashboard; an empty Listen disables it.
type UI struct {
	Listen string
	// Refresh is how often the dashboard reads the plugins' views from
	// Redis while anyone watches: once for all viewers.
	Refresh time.Duration
}

// DefaultUIRefresh and MinUIRefresh bound how often the dashboard reads
// Redis: a view may scan many keys.
const (
	DefaultUIRefresh = time.Second
	MinUIRefresh     = 100 * time.Millisecond
)

// Plugin is one plugin block.
type Plugin struct {
	Name     string
	Path     string
	Channels []string
	Timeout  time.Duration
	SHA256   string
	// MaxAttempts is how often a batch is tried on this plugin (crash,
	// timeout) before its orders are dead-lettered for it.
	MaxAttempts int
	// RestartLimit crashes within RestartWindow disable the plugin.
	RestartLimit  int
	RestartWindow time.Duration
	// AllowKeys narrows the key patterns the plugin declares: an effect's
	// key must match one of those and one of these. Nil when the block has
	// no allow_keys; never empty.
	AllowKeys []string
	// AllowKeysRange is where allow_keys stands, for diagnostics found at
	// launch (a pattern no declared key can match). Nil without allow_keys.
	AllowKeysRange *hcl.Range
	// ReadPaths are files and directories the plugin may read (and
	// execute) inside the sandbox besides its binary and the system
	// directories, such as an interpreter's library directory. Absolute.
	ReadPaths []string
	// Sandbox is the config's sandbox block, copied into each plugin so a
	// launch (or relaunch) has all it needs.
	Sandbox Sandbox
	// Body is the plugin's own `config {}` block, decoded against the schema
	// the plugin describes (see DecodePluginConfig). Nil when absent.
	Body hcl.Body
	// Range is where the block starts, for diagnostics about the plugin.
	Range hcl.Range
}

type fileSchema struct {
	PluginDir      *string           `hcl:"plugin_dir,optional"`
	OrderKeyPrefix *string           `hcl:"order_key_prefix,optional"`
	Redis          *redisSchema      `hcl:"redis,block"`
	Sources        []sourceSchema    `hcl:"source,block"`
	Batch          *batchSchema      `hcl:"batch,block"`
	DeadLetter     *deadLetterSchema `hcl:"dead_letter,block"`
	Log            *logSchema        `hcl:"log,block"`
	Metrics        *metricsSchema    `hcl:"metrics,block"`
	Sandbox        *sandboxSchema    `hcl:"sandbox,block"`
	Limits         *limitsSchema     `hcl:"limits,block"`
	UI             *uiSchema         `hcl:"ui,block"`
	Plugins        []pluginSchema    `hcl:"plugin,block"`
	Body           hcl.Body          `hcl:",body"`
}

type redisSchema struct {
	Address     *string         `hcl:"address,optional"`
	Username    *string         `hcl:"username,optional"`
	Password    *string         `hcl:"password,optional"`
	DB          *int            `hcl:"db,optional"`
	DialTimeout *string         `hcl:"dial_timeout,optional"`
	TLS         *tlsSchema      `hcl:"tls,block"`
	Sentinel    *sentinelSchema `hcl:"sentinel,block"`
	Cluster     *clusterSchema  `hcl:"cluster,block"`
	Body        hcl.Body        `hcl:",body"`
}

type sentinelSchema struct {
	MasterName *string   `hcl:"master_name,optional"`
	Addresses  []string  `hcl:"addresses,optional"`
	Username   *string   `hcl:"username,optional"`
	Password   *string   `hcl:"password,optional"`
	Range      hcl.Range `hcl:",def_range"`
	Body       hcl.Body  `hcl:",body"`
}

type clusterSchema struct {
	Addresses    []string  `hcl:"addresses,optional"`
	WaitReplicas *int      `hcl:"wait_replicas,optional"`
	WaitTimeout  *string   `hcl:"wait_timeout,optional"`
	Range        hcl.Range `hcl:",def_range"`
	Body         hcl.Body  `hcl:",body"`
}

type tlsSchema struct {
	CAFile             *string `hcl:"ca_file,optional"`
	CertFile           *string `hcl:"cert_file,optional"`
	KeyFile            *string `hcl:"key_file,optional"`
	ServerName         *string `hcl:"server_name,optional"`
	InsecureSkipVerify *bool   `hcl:"insecure_skip_verify,optional"`
}

type sourceSchema struct {
	Kind       string            `hcl:"kind,label"`
	Channels   []string          `hcl:"channels,optional"`
	IDPrefixes map[string]string `hcl:"id_prefixes,optional"`
	Sharded    *bool             `hcl:"sharded,optional"`
	// Stream source settings.
	Stream          *string   `hcl:"stream,optional"`
	Shards          *int      `hcl:"shards,optional"`
	Group           *string   `hcl:"group,optional"`
	Consumer        *string   `hcl:"consumer,optional"`
	ClaimIdle       *string   `hcl:"claim_idle,optional"`
	MaxDeliveries   *int      `hcl:"max_deliveries,optional"`
	MissingHashWait *string   `hcl:"missing_hash_wait,optional"`
	Start           *string   `hcl:"start,optional"`
	Range           hcl.Range `hcl:",def_range"`
	Body            hcl.Body  `hcl:",body"`
}

type batchSchema struct {
	MaxOrders *int     `hcl:"max_orders,optional"`
	MaxWait   *string  `hcl:"max_wait,optional"`
	Body      hcl.Body `hcl:",body"`
}

type deadLetterSchema struct {
	Stream *string  `hcl:"stream,optional"`
	MaxLen *int64   `hcl:"max_len,optional"`
	Body   hcl.Body `hcl:",body"`
}

type logSchema struct {
	Level  *string  `hcl:"level,optional"`
	Format *string  `hcl:"format,optional"`
	Body   hcl.Body `hcl:",body"`
}

type metricsSchema struct {
	Listen *string  `hcl:"listen,optional"`
	Pprof  *bool    `hcl:"pprof,optional"`
	Body   hcl.Body `hcl:",body"`
}

type uiSchema struct {
	Listen  *string  `hcl:"listen,optional"`
	Refresh *string  `hcl:"refresh,optional"`
	Body    hcl.Body `hcl:",body"`
}

type sandboxSchema struct {
	PluginUser *string  `hcl:"plugin_user,optional"`
	Require    *bool    `hcl:"require,optional"`
	Body       hcl.Body `hcl:",body"`
}

type pluginSchema struct {
	Name          string        `hcl:"name,label"`
	Path          *string       `hcl:"path,optional"`
	Channels      []string      `hcl:"channels,optional"`
	Timeout       *string       `hcl:"timeout,optional"`
	SHA256        *string       `hcl:"sha256,optional"`
	MaxAttempts   *int          `hcl:"max_attempts,optional"`
	RestartLimit  *int          `hcl:"restart_limit,optional"`
	RestartWindow *string       `hcl:"restart_window,optional"`
	AllowKeys     *[]string     `hcl:"allow_keys,optional"`
	ReadPaths     []string      `hcl:"read_paths,optional"`
	Config        *pluginConfig `hcl:"config,block"`
	Range         hcl.Range     `hcl:",def_range"`
	Body          hcl.Body      `hcl:",body"`
}

type pluginConfig struct {
	Body hcl.Body `hcl:",remain"`
}

// Load reads and validates the file at path.
func Load(path string) (*Config, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, hcl.Diagnostics{errorAt(fileStart(path), "Cannot read config file", err.Error())}
	}
	return Parse(path, src)
}

// Parse decodes src as if read from filename.
func Parse(filename string, src []byte) (*Config, hcl.Diagnostics) {
	parser := hclparse.NewParser()
	f, diags := parser.ParseHCL(src, filename)
	if diags.HasErrors() {
		return nil, diags
	}
	var raw fileSchema
	dir := filepath.Dir(filename)
	diags = append(diags, gohcl.DecodeBody(f.Body, evalContext(dir), &raw)...)
	if diags.HasErrors() {
		return nil, diags
	}
	cfg, more := build(filename, dir, &raw)
	diags = append(diags, more...)
	if diags.HasErrors() {
		return nil, diags
	}
	return cfg, diags
}

var sha256Pattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

func build(filename, dir string, raw *fileSchema) (*Config, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	cfg := &Config{
		Filename:       filename,
		PluginDir:      resolve(dir, deref(raw.PluginDir, "plugins")),
		OrderKeyPrefix: deref(raw.OrderKeyPrefix, DefaultOrderKeyPrefix),
		Redis:          Redis{Address: DefaultRedisAddress, DialTimeout: 5 * time.Second},
		Batch:          Batch{MaxOrders: DefaultMaxOrders, MaxWait: DefaultMaxWait},
		DeadLetter:     DeadLetter{Stream: DefaultDeadLetterStream, MaxLen: DefaultDeadLetterMaxLen},
		Log:            Log{Level: "info"},
	}
	checkOrderKeyPrefix(&diags, cfg.OrderKeyPrefix, attrRange(raw.Body, "order_key_prefix"))
	if r := raw.Redis; r != nil {
		cfg.Redis.Address = deref(r.Address, cfg.Redis.Address)
		cfg.Redis.Username = deref(r.Username, "")
		cfg.Redis.Password = deref(r.Password, "")
		cfg.Redis.DB = deref(r.DB, 0)
		cfg.Redis.DialTimeout = duration(&diags, r.Body, "dial_timeout", r.DialTimeout, cfg.Redis.DialTimeout)
		if t := r.TLS; t != nil {
			cfg.Redis.TLS = &TLS{
				CAFile:             resolveOpt(dir, t.CAFile),
				CertFile:           resolveOpt(dir, t.CertFile),
				KeyFile:            resolveOpt(dir, t.KeyFile),
				ServerName:         deref(t.ServerName, ""),
				InsecureSkipVerify: deref(t.InsecureSkipVerify, false),
			}
		}
		buildTopology(&diags, &cfg.Redis, r)
	}
	switch len(raw.Sources) {
	case 0:
		cfg.Source = Source{Kind: "pubsub", Channels: []string{DefaultChannel}}
	case 1:
		cfg.Source = buildSource(&diags, &raw.Sources[0])
	default:
		diags = append(diags, errorAt(&raw.Sources[1].Range, "Duplicate source block", "Only one source block is allowed."))
	}
	var batchBody hcl.Body
	if b := raw.Batch; b != nil {
		batchBody = b.Body
		cfg.Batch.MaxOrders = deref(b.MaxOrders, cfg.Batch.MaxOrders)
		if cfg.Batch.MaxOrders < 1 {
			diags = append(diags, errorAt(attrRange(b.Body, "max_orders"), "Invalid batch size", "max_orders must be at least 1."))
		}
		cfg.Batch.MaxWait = waitDuration(&diags, b.Body, "max_wait", b.MaxWait, cfg.Batch.MaxWait)
	}
	cfg.Limits = buildLimits(&diags, raw.Limits, cfg.Batch.MaxOrders, batchBody)
	cfg.EffectLimits = buildEffectLimits(&diags, raw.Limits)
	if d := raw.DeadLetter; d != nil {
		cfg.DeadLetter.Stream = deref(d.Stream, cfg.DeadLetter.Stream)
		cfg.DeadLetter.MaxLen = deref(d.MaxLen, cfg.DeadLetter.MaxLen)
		if cfg.DeadLetter.MaxLen < 0 {
			diags = append(diags, errorAt(attrRange(d.Body, "max_len"), "Invalid max_len",
				"max_len must be 0 (keep every dead letter) or more."))
		}
	}
	if l := raw.Log; l != nil {
		cfg.Log.Level = strings.ToLower(deref(l.Level, cfg.Log.Level))
		if !contains(LogLevels, cfg.Log.Level) {
			diags = append(diags, errorAt(attrRange(l.Body, "level"), "Invalid log level",
				fmt.Sprintf("level %q is not one of %s.", *l.Level, strings.Join(LogLevels, ", "))))
		}
		switch format := deref(l.Format, "text"); format {
		case "text":
		case "json":
			cfg.Log.JSON = true
		default:
			diags = append(diags, errorAt(attrRange(l.Body, "format"), "Invalid log format", fmt.Sprintf("format %q is not text or json.", format)))
		}
	}
	if m := raw.Metrics; m != nil {
		cfg.Metrics.Listen = deref(m.Listen, "")
		cfg.Metrics.Pprof = deref(m.Pprof, false)
		if m.Listen != nil {
			if err := checkListen(cfg.Metrics.Listen); err != nil {
				diags = append(diags, errorAt(attrRange(m.Body, "listen"), "Invalid metrics listen address",
					fmt.Sprintf("listen = %q %v. Use host:port, such as \"127.0.0.1:9090\" or \":9090\"; leave out the metrics block to serve no metrics.", cfg.Metrics.Listen, err)))
			}
		}
	}
	cfg.UI.Refresh = DefaultUIRefresh
	if u := raw.UI; u != nil {
		cfg.UI.Listen = deref(u.Listen, "")
		cfg.UI.Refresh = duration(&diags, u.Body, "refresh", u.Refresh, DefaultUIRefresh)
		if cfg.UI.Refresh < MinUIRefresh {
			diags = append(diags, errorAt(attrRange(u.Body, "refresh"), "Invalid ui refresh",
				fmt.Sprintf("refresh = %q is more often than every %s; the dashboard reads every view each time.", *u.Refresh, MinUIRefresh)))
		}
	}
	if sb := raw.Sandbox; sb != nil {
		cfg.Sandbox.Require = deref(sb.Require, false)
		if sb.PluginUser != nil {
			cfg.Sandbox.PluginUser = *sb.PluginUser
			cfg.Sandbox.PluginUserRange = attrRange(sb.Body, "plugin_user")
			if u := *sb.PluginUser; u == "" || u == "root" || u == "0" {
				diags = append(diags, errorAt(cfg.Sandbox.PluginUserRange, "Invalid plugin_user",
					fmt.Sprintf("plugin_user = %q: plugins never run as root; name an unprivileged account, or remove plugin_user for the default %q.", u, DefaultPluginUser)))
			}
		}
	}
	if len(raw.Plugins) == 0 {
		diags = append(diags, errorAt(bodyRange(raw.Body, filename), "No plugins",
			"Add at least one plugin block; without one eventhost has nothing to do."))
	}
	seen := map[string]bool{}
	for _, p := range raw.Plugins {
		if p.Name == "" || strings.ContainsAny(p.Name, "/\x00") {
			diags = append(diags, errorAt(&p.Range, "Invalid plugin name",
				fmt.Sprintf("Plugin name %q must be non-empty and hold no / or NUL: it names the binary eventhost-plugin-NAME and the plugin's markers.", p.Name)))
			continue
		}
		if seen[p.Name] {
			diags = append(diags, errorAt(&p.Range, "Duplicate plugin block", fmt.Sprintf("Plugin %q is configured twice.", p.Name)))
			continue
		}
		seen[p.Name] = true
		cfg.Plugins = append(cfg.Plugins, buildPlugin(&diags, cfg, dir, p))
	}
	return cfg, diags
}

func buildPlugin(diags *hcl.Diagnostics, cfg *Config, dir string, p pluginSchema) Plugin {
	pl := Plugin{
		Name:          p.Name,
		Path:          filepath.Join(cfg.PluginDir, PluginBinaryPrefix+p.Name),
		Channels:      p.Channels,
		Timeout:       duration(diags, p.Body, "timeout", p.Timeout, DefaultPluginTimeout),
		SHA256:        deref(p.SHA256, ""),
		MaxAttempts:   deref(p.MaxAttempts, DefaultMaxAttempts),
		RestartLimit:  deref(p.RestartLimit, DefaultRestartLimit),
		RestartWindow: duration(diags, p.Body, "restart_window", p.RestartWindow, DefaultRestartWindow),
		Sandbox:       cfg.Sandbox,
		Range:         p.Range,
	}
	for _, rp := range p.ReadPaths {
		if rp == "" {
			*diags = append(*diags, errorAt(attrRange(p.Body, "read_paths"), "Empty read_paths entry",
				"An empty path grants nothing; remove it."))
			continue
		}
		pl.ReadPaths = append(pl.ReadPaths, resolve(dir, rp))
	}
	if p.Path != nil {
		pl.Path = resolve(dir, *p.Path)
	}
	if p.Config != nil {
		pl.Body = p.Config.Body
	}
	if len(pl.Channels) == 0 {
		pl.Channels = cfg.Source.Channels
	}
	for _, ch := range pl.Channels {
		if !contains(cfg.Source.Channels, ch) {
			*diags = append(*diags, errorAt(attrRange(p.Body, "channels"), "Unknown channel",
				fmt.Sprintf("Plugin %q listens on %q, which the source does not subscribe to (%q).", p.Name, ch, cfg.Source.Channels)))
		}
	}
	if pl.SHA256 != "" && !sha256Pattern.MatchString(pl.SHA256) {
		*diags = append(*diags, errorAt(attrRange(p.Body, "sha256"), "Invalid sha256",
			"sha256 must be 64 lowercase hexadecimal digits, as printed by sha256sum."))
	}
	if p.AllowKeys != nil {
		pl.AllowKeys = *p.AllowKeys
		pl.AllowKeysRange = attrRange(p.Body, "allow_keys")
		*diags = append(*diags, checkAllowKeys(p.Name, pl.AllowKeys, pl.AllowKeysRange)...)
	}
	if pl.MaxAttempts < 1 {
		*diags = append(*diags, errorAt(attrRange(p.Body, "max_attempts"), "Invalid max_attempts", "max_attempts must be at least 1."))
	}
	if pl.RestartLimit < 1 {
		*diags = append(*diags, errorAt(attrRange(p.Body, "restart_limit"), "Invalid restart_limit", "restart_limit must be at least 1."))
	}
	return pl
}

// checkAllowKeys checks what can be checked of allow_keys before the plugin
// runs: its syntax. Whether each pattern can match a key the plugin declares
// is checked at launch (pluginhost), when the declared patterns are known.
func checkAllowKeys(plugin string, allow []string, r *hcl.Range) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if len(allow) == 0 {
		diags = append(diags, errorAt(r, "Empty allow_keys",
			fmt.Sprintf("Plugin %q could write no key at all. Remove allow_keys to allow every pattern the plugin declares, or list the patterns to allow.", plugin)))
	}
	seen := map[string]bool{}
	for _, a := range allow {
		switch {
		case a == "":
			diags = append(diags, errorAt(r, "Empty allow_keys pattern",
				"An empty pattern matches no key; use \"*\" to match every declared key."))
		case seen[a]:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Subject: r,
				Summary: "Duplicate allow_keys pattern", Detail: fmt.Sprintf("%q is listed twice.", a)})
		case strings.ContainsAny(a, "?[]\\"):
			// Redis' own globs treat these specially; ours do not. The
			// pattern still narrows (fails closed), so this is a warning.
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Subject: r,
				Summary: "allow_keys pattern with ?, [ ] or \\",
				Detail:  fmt.Sprintf("In %q only * is a wildcard; ?, [, ] and \\ match themselves, unlike in Redis' KEYS patterns.", a)})
		}
		seen[a] = true
	}
	return diags
}

func buildSource(diags *hcl.Diagnostics, s *sourceSchema) Source {
	streamOnly := []struct {
		name string
		set  bool
	}{
		{"stream", s.Stream != nil}, {"group", s.Group != nil}, {"consumer", s.Consumer != nil},
		{"claim_idle", s.ClaimIdle != nil}, {"max_deliveries", s.MaxDeliveries != nil}, {"start", s.Start != nil},
		{"missing_hash_wait", s.MissingHashWait != nil}, {"shards", s.Shards != nil},
	}
	switch s.Kind {
	case "pubsub":
		for _, f := range streamOnly {
			if f.set {
				*diags = append(*diags, errorAt(attrRange(s.Body, f.name), "Setting of another source kind",
					fmt.Sprintf("%s is a setting of source \"stream\", not of source \"pubsub\".", f.name)))
			}
		}
		src := Source{Kind: "pubsub", Channels: s.Channels, Sharded: deref(s.Sharded, false)}
		if len(src.Channels) == 0 {
			src.Channels = []string{DefaultChannel}
		}
		if s.IDPrefixes != nil {
			src.IDPrefixes = s.IDPrefixes
			checkIDPrefixes(diags, attrRange(s.Body, "id_prefixes"), src)
		}
		return src
	case "stream":
		if s.Channels != nil {
			*diags = append(*diags, errorAt(attrRange(s.Body, "channels"), "Setting of another source kind",
				"channels is a setting of source \"pubsub\"; a stream source reads the stream named by stream (or its shards)."))
		}
		if s.IDPrefixes != nil {
			*diags = append(*diags, errorAt(attrRange(s.Body, "id_prefixes"), "Setting of another source kind",
				"id_prefixes is a setting of source \"pubsub\"; a stream entry names its stream."))
		}
		if s.Sharded != nil {
			*diags = append(*diags, errorAt(attrRange(s.Body, "sharded"), "Setting of another source kind",
				"sharded is a setting of source \"pubsub\"; to spread a stream over a cluster's nodes, set shards."))
		}
		st := &Stream{
			Key:             deref(s.Stream, DefaultChannel),
			Shards:          deref(s.Shards, 0),
			Group:           deref(s.Group, DefaultStreamGroup),
			Consumer:        deref(s.Consumer, ""),
			ClaimIdle:       duration(diags, s.Body, "claim_idle", s.ClaimIdle, DefaultClaimIdle),
			MaxDeliveries:   deref(s.MaxDeliveries, DefaultMaxDeliveries),
			Start:           deref(s.Start, "$"),
			MissingHashWait: duration(diags, s.Body, "missing_hash_wait", s.MissingHashWait, DefaultMissingHashWait),
		}
		if st.MissingHashWait < 0 {
			*diags = append(*diags, errorAt(attrRange(s.Body, "missing_hash_wait"), "Invalid missing_hash_wait", "missing_hash_wait must not be negative."))
		}
		if st.Key == "" || st.Group == "" {
			*diags = append(*diags, errorAt(&s.Range, "Empty stream or group", "stream and group must not be empty."))
		}
		checkShards(diags, s, st)
		if st.Consumer == "" {
			// Unique per process: a restarted host is a new consumer, and
			// what the old one left pending is claimed after claim_idle.
			host, _ := os.Hostname()
			st.Consumer = fmt.Sprintf("%s-%d", host, os.Getpid())
		}
		if st.MaxDeliveries < 1 {
			*diags = append(*diags, errorAt(attrRange(s.Body, "max_deliveries"), "Invalid max_deliveries", "max_deliveries must be at least 1."))
		}
		if st.ClaimIdle <= 0 {
			*diags = append(*diags, errorAt(attrRange(s.Body, "claim_idle"), "Invalid claim_idle", "claim_idle must be positive."))
		}
		if st.Start != "$" && st.Start != "0" {
			*diags = append(*diags, errorAt(attrRange(s.Body, "start"), "Invalid start",
				`start must be "$" (a new group reads entries added from now on) or "0" (the whole stream).`))
		}
		return Source{Kind: "stream", Channels: []string{st.Key}, Stream: st}
	default:
		*diags = append(*diags, errorAt(&s.Range, "Unknown source kind",
			fmt.Sprintf("source %q is not a known kind; use source \"pubsub\" or source \"stream\".", s.Kind)))
		return Source{Kind: s.Kind, Channels: []string{DefaultChannel}}
	}
}

// checkShards checks a stream's shards: within bounds, and a stream name
// without braces, since the first {…} of a key is its hash tag and would
// put every shard in one slot.
func checkShards(diags *hcl.Diagnostics, s *sourceSchema, st *Stream) {
	if s.Shards == nil {
		return
	}
	if st.Shards < 1 || st.Shards > MaxStreamShards {
		*diags = append(*diags, errorAt(attrRange(s.Body, "shards"), "Invalid shards",
			fmt.Sprintf("shards = %d: give 1 to %d stream keys (each is read by a blocked connection of every host), or remove shards for one key.", st.Shards, MaxStreamShards)))
	}
	if strings.ContainsAny(st.Key, "{}") {
		*diags = append(*diags, errorAt(attrRange(s.Body, "stream"), "Hash tag in a sharded stream's name",
			fmt.Sprintf("stream %q holds { or }: a key's first {…} is its hash tag, so the shards %s… would not get their own slots. Remove the braces.", st.Key, ShardKey(st.Key, 0))))
	}
}

// checkIDPrefixes checks that each id prefix names a channel of src, is
// not empty, and is not a prefix of another: an id must tell one channel.
func checkIDPrefixes(diags *hcl.Diagnostics, r *hcl.Range, src Source) {
	channels := make([]string, 0, len(src.IDPrefixes))
	for ch := range src.IDPrefixes {
		channels = append(channels, ch)
	}
	sort.Strings(channels)
	for _, ch := range channels {
		p := src.IDPrefixes[ch]
		if !contains(src.Channels, ch) {
			*diags = append(*diags, errorAt(r, "Unknown channel in id_prefixes",
				fmt.Sprintf("id_prefixes names channel %q, which the source does not subscribe to (%q).", ch, src.Channels)))
		}
		if p == "" {
			*diags = append(*diags, errorAt(r, "Empty id prefix",
				fmt.Sprintf("id_prefixes gives channel %q an empty prefix, which every id starts with; give the prefix its orders' ids start with.", ch)))
			continue
		}
		for _, other := range channels {
			if q := src.IDPrefixes[other]; other != ch && q != "" && strings.HasPrefix(q, p) && (q != p || ch < other) {
				*diags = append(*diags, errorAt(r, "Ambiguous id prefixes",
					fmt.Sprintf("id_prefixes: %q (channel %q) starts with %q (channel %q), so an id could belong to both; make them distinct.", q, other, p, ch)))
			}
		}
	}
}

// globChars are special in SCAN MATCH patterns, which catch-up builds from
// order_key_prefix.
const globChars = "*?[]\\"

// checkOrderKeyPrefix refuses a prefix that would make catch-up scan keys
// that are not orders: an empty one matches every key in the database, a
// glob character matches more than itself.
func checkOrderKeyPrefix(diags *hcl.Diagnostics, prefix string, r *hcl.Range) {
	switch {
	case prefix == "":
		*diags = append(*diags, errorAt(r, "Empty order_key_prefix",
			fmt.Sprintf("order_key_prefix must not be empty: catch-up would take every key in the database for an order. The tutorial's is %q.", DefaultOrderKeyPrefix)))
	case strings.ContainsAny(prefix, globChars):
		*diags = append(*diags, errorAt(r, "Glob character in order_key_prefix",
			fmt.Sprintf("order_key_prefix %q holds one of %s, which Redis' SCAN MATCH treats as a pattern: catch-up would take other keys for orders.", prefix, globChars)))
	}
}

// checkListen accepts host:port with a numeric port from 0 to 65535 (0: a
// free port the kernel picks, as the demo does) and a host that is empty
// (every interface), an IP address or a DNS name. No lookup is made:
// validate must not depend on the network.
func checkListen(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("is not host:port (%v)", err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 || port != strconv.Itoa(n) {
		return fmt.Errorf("has port %q, not a number from 0 to 65535", port)
	}
	if host == "" || net.ParseIP(host) != nil {
		return nil
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return fmt.Errorf("has host %q, which is neither an IP address nor a DNS name", host)
		}
	}
	return nil
}

// fileStart is the first position of file, for diagnostics about the file
// as a whole.
func fileStart(filename string) *hcl.Range {
	p := hcl.Pos{Line: 1, Column: 1, Byte: 0}
	return &hcl.Range{Filename: filename, Start: p, End: p}
}

// bodyRange is the whole of body, or the file's start when body is not
// native syntax.
func bodyRange(body hcl.Body, filename string) *hcl.Range {
	if sb, ok := body.(*hclsyntax.Body); ok {
		r := sb.SrcRange
		return &r
	}
	return fileStart(filename)
}

func duration(diags *hcl.Diagnostics, body hcl.Body, name string, v *string, def time.Duration) time.Duration {
	if v == nil {
		return def
	}
	d, err := time.ParseDuration(*v)
	if err != nil || d <= 0 {
		*diags = append(*diags, errorAt(attrRange(body, name), "Invalid duration",
			fmt.Sprintf("%s = %q is not a positive duration such as \"500ms\" or \"10s\".", name, *v)))
		return def
	}
	return d
}

// waitDuration is duration, 0 allowed: "0s" means no waiting at all.
func waitDuration(diags *hcl.Diagnostics, body hcl.Body, name string, v *string, def time.Duration) time.Duration {
	if v == nil {
		return def
	}
	d, err := time.ParseDuration(*v)
	if err != nil || d < 0 {
		*diags = append(*diags, errorAt(attrRange(body, name), "Invalid duration",
			fmt.Sprintf("%s = %q is not a duration such as \"0s\" or \"2ms\".", name, *v)))
		return def
	}
	return d
}

func errorAt(r *hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: r}
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func resolve(dir, path string) string {
	if filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

func resolveOpt(dir string, p *string) string {
	if p == nil || *p == "" {
		return ""
	}
	return resolve(dir, *p)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
