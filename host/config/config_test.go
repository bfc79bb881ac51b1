package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/orders"
	"github.com/eventhost/eventhost/sdk"
)

// parse writes nothing: it decodes src as if read from <dir>/eventhost.hcl,
// so relative paths resolve against dir.
func parse(t *testing.T, dir, src string) (*config.Config, hcl.Diagnostics) {
	t.Helper()
	return config.Parse(filepath.Join(dir, "eventhost.hcl"), []byte(src))
}

func mustParse(t *testing.T, dir, src string) *config.Config {
	t.Helper()
	cfg, diags := parse(t, dir, src)
	if diags.HasErrors() {
		t.Fatalf("Parse: %v", diags)
	}
	return cfg
}

func TestParseDefaults(t *testing.T) {
	dir := t.TempDir()
	cfg := mustParse(t, dir, `plugin "sales-histogram" {}`)
	want := config.Plugin{
		Name:          "sales-histogram",
		Path:          filepath.Join(dir, "plugins", "eventhost-plugin-sales-histogram"),
		Channels:      []string{"purchase_orders"},
		Timeout:       10 * time.Second,
		MaxAttempts:   3,
		RestartLimit:  5,
		RestartWindow: time.Minute,
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{name: "filename", got: cfg.Filename, want: filepath.Join(dir, "eventhost.hcl")},
		{name: "plugin dir", got: cfg.PluginDir, want: filepath.Join(dir, "plugins")},
		{name: "order key prefix", got: cfg.OrderKeyPrefix, want: "purchase_order_details:"},
		{name: "redis address", got: cfg.Redis.Address, want: "127.0.0.1:6379"},
		{name: "redis dial timeout", got: cfg.Redis.DialTimeout, want: 5 * time.Second},
		{name: "redis tls", got: cfg.Redis.TLS, want: (*config.TLS)(nil)},
		{name: "source", got: cfg.Source, want: config.Source{Kind: "pubsub", Channels: []string{"purchase_orders"}}},
		{name: "batch", got: cfg.Batch, want: config.Batch{MaxOrders: 512, MaxWait: 0}},
		{name: "dead letter", got: cfg.DeadLetter, want: config.DeadLetter{Stream: "eventhost:deadletter", MaxLen: 100000}},
		{name: "limits", got: cfg.Limits, want: orders.DefaultLimits()},
		{name: "log", got: cfg.Log, want: config.Log{Level: "info"}},
		{name: "ui off", got: cfg.UI, want: config.UI{Refresh: time.Second}},
		{name: "metrics off", got: cfg.Metrics.Listen, want: ""},
		{name: "one plugin", got: len(cfg.Plugins), want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("got %#v, want %#v", tt.got, tt.want)
			}
		})
	}
	got := cfg.Plugins[0]
	if got.Range.Start.Line != 1 || got.Range.Filename != filepath.Join(dir, "eventhost.hcl") {
		t.Errorf("plugin range = %v, want line 1 of the file", got.Range)
	}
	got.Range, got.Body = hcl.Range{}, nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("plugin = %#v\nwant     %#v", got, want)
	}
}

func TestParseSettings(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "two-newlines"), []byte("pw\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("EVENTHOST_TEST_ADDR", "10.0.0.1:6380")
	t.Setenv("EVENTHOST_TEST_EMPTY", "")
	tests := []struct {
		name string
		src  string
		get  func(*config.Config) any
		want any
	}{
		{
			name: "stream source settings",
			src: `source "stream" {
  stream = "orders"
  group = "g"
  consumer = "c1"
  claim_idle = "2s"
  max_deliveries = 7
  start = "0"
  missing_hash_wait = "5s"
}
plugin "x" {}`,
			get: func(c *config.Config) any {
				return []any{c.Source.Kind, c.Source.Channels, *c.Source.Stream, c.Plugins[0].Channels}
			},
			want: []any{"stream", []string{"orders"},
				config.Stream{Key: "orders", Group: "g", Consumer: "c1", ClaimIdle: 2 * time.Second, MaxDeliveries: 7, Start: "0", MissingHashWait: 5 * time.Second},
				[]string{"orders"}},
		},
		{
			name: "sharded pubsub",
			src:  "source \"pubsub\" {\n  channels = [\"a\", \"b\"]\n  sharded = true\n}\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return []any{c.Source.Kind, c.Source.Channels, c.Source.Sharded} },
			want: []any{"pubsub", []string{"a", "b"}, true},
		},
		{
			name: "sharded stream",
			src:  "source \"stream\" {\n  stream = \"po\"\n  shards = 3\n}\nplugin \"x\" {}",
			get: func(c *config.Config) any {
				s := *c.Source.Stream
				return []any{c.Source.Channels, s.Key, s.Shards, s.Keys(), c.Plugins[0].Channels}
			},
			want: []any{[]string{"po"}, "po", 3, []string{"po:{0}", "po:{1}", "po:{2}"}, []string{"po"}},
		},
		{
			name: "ui",
			src:  "ui {\n  listen = \"127.0.0.1:0\"\n  refresh = \"250ms\"\n}\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.UI },
			want: config.UI{Listen: "127.0.0.1:0", Refresh: 250 * time.Millisecond},
		},
		{
			name: "stream source defaults",
			src:  "source \"stream\" {}\nplugin \"x\" {}",
			get: func(c *config.Config) any {
				s := *c.Source.Stream
				return []any{s.Key, s.Group, s.ClaimIdle, s.MaxDeliveries, s.Start, strings.HasSuffix(s.Consumer, fmt.Sprintf("-%d", os.Getpid()))}
			},
			want: []any{"purchase_orders", "eventhost", 30 * time.Second, 5, "$", true},
		},
		{
			name: "explicit plugin path is relative to the config dir",
			src:  `plugin "x" { path = "bin/my-plugin" }`,
			get:  func(c *config.Config) any { return c.Plugins[0].Path },
			want: filepath.Join(dir, "bin", "my-plugin"),
		},
		{
			name: "absolute plugin path stays",
			src:  `plugin "x" { path = "/opt/p" }`,
			get:  func(c *config.Config) any { return c.Plugins[0].Path },
			want: "/opt/p",
		},
		{
			name: "plugin_dir is relative to the config dir",
			src:  "plugin_dir = \"lib\"\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.Plugins[0].Path },
			want: filepath.Join(dir, "lib", "eventhost-plugin-x"),
		},
		{
			name: "env with a set variable",
			src:  "redis { address = env(\"EVENTHOST_TEST_ADDR\", \"fallback:1\") }\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.Redis.Address },
			want: "10.0.0.1:6380",
		},
		{
			name: "env default for an unset variable",
			src:  "redis { address = env(\"EVENTHOST_TEST_UNSET_VARIABLE\", \"fallback:1\") }\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.Redis.Address },
			want: "fallback:1",
		},
		{
			name: "env default for an empty variable",
			src:  "redis { address = env(\"EVENTHOST_TEST_EMPTY\", \"fallback:1\") }\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.Redis.Address },
			want: "fallback:1",
		},
		{
			name: "env without default",
			src:  "redis { password = env(\"EVENTHOST_TEST_ADDR\") }\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.Redis.Password },
			want: "10.0.0.1:6380",
		},
		{
			name: "env without default, unset, is empty",
			src:  "redis { password = env(\"EVENTHOST_TEST_UNSET_VARIABLE\") }\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.Redis.Password },
			want: "",
		},
		{
			name: "file is relative to the config dir and loses its newline",
			src:  "redis { password = file(\"secret\") }\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.Redis.Password },
			want: "s3cret",
		},
		{
			name: "file loses only one newline",
			src:  "redis { password = file(\"two-newlines\") }\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.Redis.Password },
			want: "pw\n",
		},
		{
			name: "tls paths are relative to the config dir",
			src:  "redis {\n tls {\n ca_file = \"ca.pem\"\n server_name = \"r\"\n }\n}\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return *c.Redis.TLS },
			want: config.TLS{CAFile: filepath.Join(dir, "ca.pem"), ServerName: "r"},
		},
		{
			name: "source channels and plugin subset",
			src:  "source \"pubsub\" { channels = [\"a\", \"b\"] }\nplugin \"x\" { channels = [\"b\"] }\nplugin \"y\" {}",
			get: func(c *config.Config) any {
				return [][]string{c.Source.Channels, c.Plugins[0].Channels, c.Plugins[1].Channels}
			},
			want: [][]string{{"a", "b"}, {"b"}, {"a", "b"}},
		},
		{
			name: "id prefixes per channel",
			src:  "source \"pubsub\" {\n channels = [\"a\", \"b\"]\n id_prefixes = { b = \"B-\" }\n}\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.Source.IDPrefixes },
			want: map[string]string{"b": "B-"},
		},
		{
			name: "batch, dead letter, log, metrics",
			src: "batch {\n max_orders = 64\n max_wait = \"5ms\"\n}\ndead_letter {\n stream = \"dl\"\n max_len = 1000\n}\n" +
				"log {\n level = \"debug\"\n format = \"json\"\n}\nmetrics { listen = \":9090\" }\nplugin \"x\" {}",
			get: func(c *config.Config) any { return []any{c.Batch, c.DeadLetter, c.Log, c.Metrics} },
			want: []any{config.Batch{MaxOrders: 64, MaxWait: 5 * time.Millisecond}, config.DeadLetter{Stream: "dl", MaxLen: 1000},
				config.Log{Level: "debug", JSON: true}, config.Metrics{Listen: ":9090"}},
		},
		{
			name: "limits",
			src: "limits {\n max_id_bytes = 64\n max_order_bytes = 8192\n max_field_bytes = 1024\n max_qty = 100\n" +
				" max_cost = 25000.5\n cost_decimals = 2\n min_ts = 1600000000\n max_ts = 1900000000\n}\nplugin \"x\" {}",
			get: func(c *config.Config) any { return c.Limits },
			want: orders.Limits{MaxIDBytes: 64, MaxOrderBytes: 8192, MaxFieldBytes: 1024, MaxQty: 100,
				MaxCost: 25000.5, CostDecimals: 2, MinTS: 1600000000, MaxTS: 1900000000},
		},
		{
			name: "limits: unset ones keep their defaults; edges accepted",
			src:  "limits {\n max_qty = 1\n min_ts = 5\n max_ts = 5\n max_id_bytes = 1024\n cost_decimals = 0\n}\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.Limits },
			want: func() orders.Limits {
				l := orders.DefaultLimits()
				l.MaxQty, l.MinTS, l.MaxTS, l.MaxIDBytes, l.CostDecimals = 1, 5, 5, 1024, 0
				return l
			}(),
		},
		{
			name: "dead letters kept without bound when asked",
			src:  "dead_letter {\n max_len = 0\n}\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.DeadLetter.MaxLen },
			want: int64(0),
		},
		{
			name: "log levels are case-insensitive, as hclog's",
			src:  "log {\n level = \"WARN\"\n}\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.Log.Level },
			want: "warn",
		},
		{
			name: "metrics listen forms",
			src:  "metrics {\n listen = \"[::1]:9090\"\n}\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.Metrics.Listen },
			want: "[::1]:9090",
		},
		{
			name: "metrics listen on a free port",
			src:  "metrics {\n listen = \"127.0.0.1:0\"\n}\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.Metrics.Listen },
			want: "127.0.0.1:0",
		},
		{
			name: "metrics listen on a host name",
			src:  "metrics {\n listen = \"metrics.internal:9090\"\n}\nplugin \"x\" {}",
			get:  func(c *config.Config) any { return c.Metrics.Listen },
			want: "metrics.internal:9090",
		},
		{
			name: "plugin settings",
			src: "plugin \"x\" {\n timeout = \"250ms\"\n sha256 = \"" + strings.Repeat("ab", 32) + "\"\n max_attempts = 7\n" +
				" restart_limit = 2\n restart_window = \"30s\"\n}",
			get: func(c *config.Config) any {
				p := c.Plugins[0]
				return []any{p.Timeout, p.SHA256, p.MaxAttempts, p.RestartLimit, p.RestartWindow}
			},
			want: []any{250 * time.Millisecond, strings.Repeat("ab", 32), 7, 2, 30 * time.Second},
		},
		{
			name: "allow_keys and where it stands",
			src:  "plugin \"x\" {\n\n  allow_keys = [\"sales:*\", \"sales_summary\"]\n}\nplugin \"y\" {}",
			get: func(c *config.Config) any {
				x, y := c.Plugins[0], c.Plugins[1]
				return []any{x.AllowKeys, x.AllowKeysRange.Start.Line, y.AllowKeys == nil, y.AllowKeysRange == nil}
			},
			want: []any{[]string{"sales:*", "sales_summary"}, 3, true, true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, dir, tt.src)
			if got := tt.get(cfg); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		src      string
		wantLine int // 0: the diagnostic has no subject
		want     string
		wantErrs int // 0 means 1
	}{
		{
			name:     "stream setting in a pubsub source",
			src:      "source \"pubsub\" {\n  claim_idle = \"1s\"\n}\nplugin \"x\" {}",
			wantLine: 2, want: `claim_idle is a setting of source "stream", not of source "pubsub"`,
		},
		{
			name:     "channels in a stream source",
			src:      "source \"stream\" {\n  channels = [\"a\"]\n}\nplugin \"x\" {}",
			wantLine: 2, want: `channels is a setting of source "pubsub"`,
		},
		{
			name:     "sharded in a stream source",
			src:      "source \"stream\" {\n\n  sharded = true\n}\nplugin \"x\" {}",
			wantLine: 3, want: `sharded is a setting of source "pubsub"`,
		},
		{
			name:     "shards in a pubsub source",
			src:      "source \"pubsub\" {\n  shards = 2\n}\nplugin \"x\" {}",
			wantLine: 2, want: `shards is a setting of source "stream", not of source "pubsub"`,
		},
		{
			name:     "no shards",
			src:      "source \"stream\" {\n  shards = 0\n}\nplugin \"x\" {}",
			wantLine: 2, want: "shards = 0: give 1 to 16 stream keys",
		},
		{
			name:     "too many shards",
			src:      "source \"stream\" {\n\n  shards = 17\n}\nplugin \"x\" {}",
			wantLine: 3, want: "shards = 17: give 1 to 16 stream keys",
		},
		{
			name:     "hash tag in a sharded stream's name",
			src:      "source \"stream\" {\n  stream = \"po{x}\"\n  shards = 2\n}\nplugin \"x\" {}",
			wantLine: 2, want: `stream "po{x}" holds { or }: a key's first {…} is its hash tag, so the shards po{x}:{0}… would not get their own slots`,
		},
		{
			name:     "bad stream start",
			src:      "source \"stream\" {\n\n  start = \"now\"\n}\nplugin \"x\" {}",
			wantLine: 3, want: `start must be "$"`,
		},
		{
			name:     "zero max_deliveries",
			src:      "source \"stream\" {\n  max_deliveries = 0\n}\nplugin \"x\" {}",
			wantLine: 2, want: "max_deliveries must be at least 1",
		},
		{
			name:     "ui refresh too often",
			src:      "ui {\n  listen = \":0\"\n  refresh = \"10ms\"\n}\nplugin \"x\" {}",
			wantLine: 3, want: `refresh = "10ms" is more often than every 100ms`,
		},
		{
			name:     "unknown source kind",
			src:      "source \"kafka\" {}\nplugin \"x\" {}",
			wantLine: 1, want: `use source "pubsub" or source "stream"`,
		},
		{
			name:     "bad plugin timeout",
			src:      "plugin \"x\" {\n  channels = [\"purchase_orders\"]\n  timeout = \"soon\"\n}",
			wantLine: 3, want: `timeout = "soon" is not a positive duration`,
		},
		{
			name:     "negative batch max_wait",
			src:      "batch {\n max_wait = \"-1s\"\n}\nplugin \"x\" {}",
			wantLine: 2, want: `max_wait = "-1s" is not a duration such as "0s" or "2ms"`,
		},
		{
			name:     "bad redis dial_timeout",
			src:      "redis {\n address = \"r:1\"\n\n dial_timeout = \"10\"\n}\nplugin \"x\" {}",
			wantLine: 4, want: `dial_timeout = "10"`,
		},
		{
			name:     "bad sha256",
			src:      "plugin \"x\" {\n\n  sha256 = \"ABC\"\n}",
			wantLine: 3, want: "sha256 must be 64 lowercase hexadecimal digits",
		},
		{
			name:     "uppercase sha256",
			src:      "plugin \"x\" {\n  sha256 = \"" + strings.Repeat("AB", 32) + "\"\n}",
			wantLine: 2, want: "sha256 must be 64 lowercase hexadecimal digits",
		},
		{
			name:     "id prefix for an unknown channel",
			src:      "source \"pubsub\" {\n  channels = [\"a\"]\n  id_prefixes = { b = \"B-\" }\n}\nplugin \"x\" {}",
			wantLine: 3, want: `id_prefixes names channel "b", which the source does not subscribe to`,
		},
		{
			name:     "empty id prefix",
			src:      "source \"pubsub\" {\n  channels = [\"a\", \"b\"]\n  id_prefixes = { b = \"\" }\n}\nplugin \"x\" {}",
			wantLine: 3, want: `id_prefixes gives channel "b" an empty prefix`,
		},
		{
			name:     "id prefixes that overlap",
			src:      "source \"pubsub\" {\n  channels = [\"a\", \"b\"]\n  id_prefixes = { a = \"B-\", b = \"B-1\" }\n}\nplugin \"x\" {}",
			wantLine: 3, want: `id_prefixes: "B-1" (channel "b") starts with "B-" (channel "a")`,
		},
		{
			name:     "equal id prefixes",
			src:      "source \"pubsub\" {\n  channels = [\"a\", \"b\"]\n  id_prefixes = { a = \"B-\", b = \"B-\" }\n}\nplugin \"x\" {}",
			wantLine: 3, want: `id_prefixes: "B-" (channel "b") starts with "B-" (channel "a")`,
		},
		{
			name:     "id prefixes in a stream source",
			src:      "source \"stream\" {\n  id_prefixes = { a = \"A\" }\n}\nplugin \"x\" {}",
			wantLine: 2, want: `id_prefixes is a setting of source "pubsub"`,
		},
		{
			name:     "unknown channel on a plugin",
			src:      "source \"pubsub\" {\n  channels = [\"a\"]\n}\nplugin \"x\" {\n  channels = [\"b\"]\n}",
			wantLine: 5, want: `listens on "b", which the source does not subscribe to`,
		},
		{
			name:     "duplicate plugin",
			src:      "plugin \"x\" {}\n\nplugin \"y\" {}\nplugin \"x\" {\n}",
			wantLine: 4, want: `Plugin "x" is configured twice`,
		},
		{
			name:     "no plugins",
			src:      "\nredis {\n address = \"r:1\"\n}",
			wantLine: 1, want: "Add at least one plugin block",
		},
		{
			name:     "no plugins in an empty file",
			src:      "",
			wantLine: 1, want: "Add at least one plugin block",
		},
		{
			name:     "empty order_key_prefix",
			src:      "plugin \"x\" {}\norder_key_prefix = \"\"",
			wantLine: 2, want: "order_key_prefix must not be empty",
		},
		{
			name:     "glob * in order_key_prefix",
			src:      "plugin \"x\" {}\n\norder_key_prefix = \"po:*\"",
			wantLine: 3, want: `order_key_prefix "po:*" holds one of *?[]\, which Redis' SCAN MATCH treats as a pattern`,
		},
		{
			name:     "glob ? in order_key_prefix",
			src:      "order_key_prefix = \"po?\"\nplugin \"x\" {}",
			wantLine: 1, want: "Glob character in order_key_prefix",
		},
		{
			name:     "glob [ in order_key_prefix",
			src:      "order_key_prefix = \"po[12]:\"\nplugin \"x\" {}",
			wantLine: 1, want: "Glob character in order_key_prefix",
		},
		{
			name:     "backslash in order_key_prefix",
			src:      "order_key_prefix = \"po\\\\:\"\nplugin \"x\" {}",
			wantLine: 1, want: "Glob character in order_key_prefix",
		},
		{
			name:     "empty plugin name",
			src:      "plugin \"y\" {}\nplugin \"\" {}",
			wantLine: 2, want: `Plugin name "" must be non-empty`,
		},
		{
			name:     "plugin name with a slash",
			src:      "plugin \"../x\" {}",
			wantLine: 1, want: `Plugin name "../x" must be non-empty and hold no /`,
		},
		{
			name:     "unknown log level",
			src:      "plugin \"x\" {}\nlog {\n  level = \"verbose\"\n}",
			wantLine: 3, want: `level "verbose" is not one of trace, debug, info, warn, error, off`,
		},
		{
			name:     "empty log level",
			src:      "plugin \"x\" {}\nlog {\n  level = \"\"\n}",
			wantLine: 3, want: `Invalid log level`,
		},
		{
			name:     "metrics listen without a port",
			src:      "plugin \"x\" {}\nmetrics {\n  listen = \"9090\"\n}",
			wantLine: 3, want: `listen = "9090" is not host:port`,
		},
		{
			name:     "metrics listen with port 08",
			src:      "plugin \"x\" {}\nmetrics {\n  listen = \":08\"\n}",
			wantLine: 3, want: `listen = ":08" has port "08", not a number from 0 to 65535`,
		},
		{
			name:     "metrics listen with a named port",
			src:      "plugin \"x\" {}\nmetrics {\n  listen = \"localhost:http\"\n}",
			wantLine: 3, want: `has port "http"`,
		},
		{
			name:     "metrics listen with port 65536",
			src:      "plugin \"x\" {}\nmetrics {\n  listen = \"localhost:65536\"\n}",
			wantLine: 3, want: `has port "65536"`,
		},
		{
			name:     "metrics listen with a URL",
			src:      "plugin \"x\" {}\nmetrics {\n  listen = \"http://localhost:9090\"\n}",
			wantLine: 3, want: `Invalid metrics listen address`,
		},
		{
			name:     "metrics listen empty",
			src:      "plugin \"x\" {}\nmetrics {\n  listen = \"\"\n}",
			wantLine: 3, want: `is not host:port`,
		},
		{
			name:     "metrics listen host with a space",
			src:      "plugin \"x\" {}\nmetrics {\n  listen = \"local host:9090\"\n}",
			wantLine: 3, want: `has host "local host", which is neither an IP address nor a DNS name`,
		},
		{
			name:     "negative dead_letter max_len",
			src:      "plugin \"x\" {}\ndead_letter {\n  max_len = -1\n}",
			wantLine: 3, want: "max_len must be 0 (keep every dead letter) or more",
		},
		{
			name:     "limits: max_id_bytes 0",
			src:      "plugin \"x\" {}\nlimits {\n  max_id_bytes = 0\n}",
			wantLine: 3, want: "limits.max_id_bytes must be at least 1",
		},
		{
			name:     "limits: max_id_bytes over what a dead letter keeps",
			src:      "plugin \"x\" {}\nlimits {\n  max_id_bytes = 1025\n}",
			wantLine: 3, want: "limits.max_id_bytes must be at most 1024",
		},
		{
			name:     "limits: max_order_bytes 0",
			src:      "plugin \"x\" {}\nlimits {\n  max_order_bytes = 0\n}",
			wantLine: 3, want: "limits.max_order_bytes must be at least 1",
		},
		{
			name:     "limits: max_field_bytes -1",
			src:      "plugin \"x\" {}\nlimits {\n  max_field_bytes = -1\n}",
			wantLine: 3, want: "limits.max_field_bytes must be at least 1",
		},
		{
			name:     "limits: field bigger than the hash",
			src:      "plugin \"x\" {}\nlimits {\n  max_order_bytes = 100\n  max_field_bytes = 101\n}",
			wantLine: 4, want: "limits.max_field_bytes = 101 is more than limits.max_order_bytes = 100",
		},
		{
			name:     "limits: max_qty 0",
			src:      "plugin \"x\" {}\nlimits {\n  max_qty = 0\n}",
			wantLine: 3, want: "limits.max_qty must be at least 1",
		},
		{
			name:     "limits: max_qty fractional",
			src:      "plugin \"x\" {}\nlimits {\n  max_qty = 1.5\n}",
			wantLine: 3, want: "",
		},
		{
			name:     "limits: max_cost 0",
			src:      "plugin \"x\" {}\nlimits {\n  max_cost = 0\n}",
			wantLine: 3, want: "limits.max_cost must be positive",
		},
		{
			name:     "limits: max_cost beyond float64 precision",
			src:      "plugin \"x\" {}\nlimits {\n  cost_decimals = 6\n  max_cost = 1e12\n}",
			wantLine: 4, want: "limits.max_cost = 1000000000000 with limits.cost_decimals = 6 allows costs of 19 digits; a float64 keeps 15 exactly",
		},
		{
			name:     "limits: cost_decimals 10",
			src:      "plugin \"x\" {}\nlimits {\n  cost_decimals = 10\n}",
			wantLine: 3, want: "limits.cost_decimals must be between 0 and 9",
		},
		{
			name:     "limits: cost_decimals -1",
			src:      "plugin \"x\" {}\nlimits {\n  cost_decimals = -1\n}",
			wantLine: 3, want: "limits.cost_decimals must be between 0 and 9",
		},
		{
			name:     "limits: min_ts 0",
			src:      "plugin \"x\" {}\nlimits {\n  min_ts = 0\n}",
			wantLine: 3, want: "limits.min_ts must be at least 1",
		},
		{
			name:     "limits: max_ts before min_ts",
			src:      "plugin \"x\" {}\nlimits {\n  min_ts = 100\n  max_ts = 99\n}",
			wantLine: 4, want: "limits.max_ts = 99 is before limits.min_ts = 100",
		},
		{
			name:     "limits: unknown attribute",
			src:      "plugin \"x\" {}\nlimits {\n  max_quantity = 5\n}",
			wantLine: 3, want: `"max_quantity" is not expected here`,
		},
		{
			name:     "limits: a batch too big for one plugin call",
			src:      "plugin \"x\" {}\nlimits {\n  max_order_bytes = 1048576\n}",
			wantLine: 3, want: "batch.max_orders = 512 times limits.max_order_bytes = 1048576 is 536870912 bytes; keep it within 67108864",
		},
		{
			name:     "batch max_orders too big for the default max_order_bytes",
			src:      "plugin \"x\" {}\nbatch {\n  max_wait = \"1ms\"\n  max_orders = 2000\n}",
			wantLine: 4, want: "batch.max_orders = 2000 times limits.max_order_bytes = 65536",
		},
		{
			name:     "unknown source kind",
			src:      "plugin \"x\" {}\nsource \"kafka\" {}",
			wantLine: 2, want: `source "kafka" is not a known kind`,
		},
		{
			name:     "duplicate source",
			src:      "source \"pubsub\" {}\nsource \"pubsub\" {}\nplugin \"x\" {}",
			wantLine: 2, want: "Only one source block is allowed",
		},
		{
			name:     "unknown top-level attribute",
			src:      "plugin \"x\" {}\n\nredis_adress = \"r:1\"",
			wantLine: 3, want: `"redis_adress" is not expected here`,
		},
		{
			name:     "unknown plugin attribute",
			src:      "plugin \"x\" {\n  pathh = \"p\"\n}",
			wantLine: 2, want: `"pathh" is not expected here`,
		},
		{
			name:     "bad log format",
			src:      "plugin \"x\" {}\nlog {\n  level = \"info\"\n  format = \"xml\"\n}",
			wantLine: 4, want: `format "xml" is not text or json`,
		},
		{
			name:     "batch max_orders 0",
			src:      "plugin \"x\" {}\nbatch {\n  max_orders = 0\n}",
			wantLine: 3, want: "max_orders must be at least 1",
		},
		{
			name:     "max_attempts 0",
			src:      "plugin \"x\" {\n  max_attempts = 0\n}",
			wantLine: 2, want: "max_attempts must be at least 1",
		},
		{
			name:     "file() of a missing file",
			src:      "plugin \"x\" {}\nredis {\n  password = file(\"nope\")\n}",
			wantLine: 3, want: "read nope", wantErrs: 2, // HCL adds an "Unsuitable value" for the failed call
		},
		{
			name:     "empty allow_keys",
			src:      "plugin \"x\" {\n  channels = [\"purchase_orders\"]\n  allow_keys = []\n}",
			wantLine: 3, want: `Plugin "x" could write no key at all`,
		},
		{
			name:     "empty allow_keys pattern",
			src:      "plugin \"x\" {\n  allow_keys = [\"a:*\", \"\"]\n}",
			wantLine: 2, want: "An empty pattern matches no key",
		},
		{
			name:     "allow_keys not a list",
			src:      "plugin \"x\" {\n  allow_keys = \"a:*\"\n}",
			wantLine: 2, want: "list of string required",
		},
		{
			name:     "syntax error",
			src:      "plugin \"x\" {\n  path = \n}",
			wantLine: 2, want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := parse(t, dir, tt.src)
			if !diags.HasErrors() {
				t.Fatalf("Parse accepted it: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with errors")
			}
			d := diags.Errs()[0].(*hcl.Diagnostic)
			wantErrs := max(tt.wantErrs, 1)
			if len(diags.Errs()) != wantErrs {
				t.Errorf("got %d errors, want %d: %v", len(diags.Errs()), wantErrs, diags)
			}
			if msg := d.Summary + ": " + d.Detail; !strings.Contains(msg, tt.want) {
				t.Errorf("diagnostic %q does not contain %q", msg, tt.want)
			}
			if tt.wantLine == 0 {
				if d.Subject != nil {
					t.Errorf("diagnostic has subject %v, want none", d.Subject)
				}
				return
			}
			if d.Subject == nil {
				t.Fatalf("diagnostic %q has no subject, want line %d", d.Summary, tt.wantLine)
			}
			if d.Subject.Start.Line != tt.wantLine {
				t.Errorf("diagnostic %q at line %d, want line %d", d.Summary, d.Subject.Start.Line, tt.wantLine)
			}
			if d.Subject.Filename != filepath.Join(dir, "eventhost.hcl") {
				t.Errorf("diagnostic names file %q", d.Subject.Filename)
			}
		})
	}
}

// TestParseAllowKeysWarnings: allow_keys mistakes that still fail closed are
// warnings, with the config accepted as written.
func TestParseAllowKeysWarnings(t *testing.T) {
	tests := []struct {
		name, pattern, want string
	}{
		{"duplicate", `"a:*", "b", "a:*"`, `"a:*" is listed twice`},
		{"question mark", `"a:?"`, `In "a:?" only * is a wildcard`},
		{"brackets", `"a:[xy]"`, `In "a:[xy]" only * is a wildcard`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := parse(t, t.TempDir(), "plugin \"x\" {\n  allow_keys = ["+tt.pattern+"]\n}")
			if diags.HasErrors() || cfg == nil {
				t.Fatalf("Parse: %v", diags)
			}
			if len(diags) != 1 || diags[0].Severity != hcl.DiagWarning {
				t.Fatalf("diagnostics %v, want one warning", diags)
			}
			if !strings.Contains(diags[0].Detail, tt.want) || diags[0].Subject == nil || diags[0].Subject.Start.Line != 2 {
				t.Errorf("warning %q at %v, want %q at line 2", diags[0].Detail, diags[0].Subject, tt.want)
			}
			if len(cfg.Plugins[0].AllowKeys) == 0 {
				t.Errorf("AllowKeys is empty")
			}
		})
	}
}

// pluginSchema is a schema like the ones plugins describe.
var pluginSchema = []sdk.Field{
	{Name: "counter", Type: sdk.TypeString, Default: "u8"},
	{Name: "limit", Type: sdk.TypeNumber},
	{Name: "enabled", Type: sdk.TypeBool},
	{Name: "tags", Type: sdk.TypeStringList},
	{Name: "token", Type: sdk.TypeString, Required: true},
}

func TestDecodePluginConfig(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want map[string]any
	}{
		{
			name: "all types",
			src: "plugin \"x\" {\n  config {\n    counter = \"u32\"\n    limit = 2.5\n    enabled = true\n" +
				"    tags = [\"a\", \"b\"]\n    token = \"t\"\n  }\n}",
			want: map[string]any{"counter": "u32", "limit": 2.5, "enabled": true, "tags": []string{"a", "b"}, "token": "t"},
		},
		{
			name: "absent optional fields are left out for the plugin's defaults",
			src:  "plugin \"x\" {\n  config {\n    token = \"t\"\n  }\n}",
			want: map[string]any{"token": "t"},
		},
		{
			name: "numbers convert from strings as HCL does",
			src:  "plugin \"x\" {\n  config {\n    token = \"t\"\n    limit = \"3\"\n  }\n}",
			want: map[string]any{"token": "t", "limit": 3.0},
		},
		{
			name: "env in plugin config",
			src:  "plugin \"x\" {\n  config {\n    token = env(\"EVENTHOST_TEST_TOKEN\")\n  }\n}",
			want: map[string]any{"token": "from-env"},
		},
	}
	t.Setenv("EVENTHOST_TEST_TOKEN", "from-env")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, t.TempDir(), tt.src)
			got, diags := config.DecodePluginConfig(cfg.Plugins[0], pluginSchema)
			if diags.HasErrors() {
				t.Fatalf("DecodePluginConfig: %v", diags)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("values = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestDecodePluginConfigNoBlock(t *testing.T) {
	cfg := mustParse(t, t.TempDir(), `plugin "x" {}`)
	got, diags := config.DecodePluginConfig(cfg.Plugins[0], pluginSchema[:1])
	if diags.HasErrors() || len(got) != 0 {
		t.Errorf("DecodePluginConfig without a config block = %v, %v; want no values and no errors", got, diags)
	}
	_, diags = config.DecodePluginConfig(cfg.Plugins[0], pluginSchema)
	if !diags.HasErrors() || !strings.Contains(diags.Error(), `"token" is required`) {
		t.Errorf("required field without a config block: %v, want a missing-argument error", diags)
	}
}

func TestDecodePluginConfigErrors(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		wantLine int
		want     string
	}{
		{
			name:     "required missing",
			src:      "plugin \"x\" {\n  config {\n    counter = \"u8\"\n  }\n}",
			wantLine: 2, want: `The argument "token" is required`,
		},
		{
			name:     "unknown attribute",
			src:      "plugin \"x\" {\n  config {\n    token = \"t\"\n\n    countr = \"u8\"\n  }\n}",
			wantLine: 5, want: `"countr" is not expected here`,
		},
		{
			name:     "wrong type: string for bool",
			src:      "plugin \"x\" {\n  config {\n    token = \"t\"\n    enabled = \"maybe\"\n  }\n}",
			wantLine: 4, want: "Incorrect attribute value type",
		},
		{
			name:     "wrong type: list for string",
			src:      "plugin \"x\" {\n  config {\n    token = [\"t\"]\n  }\n}",
			wantLine: 3, want: "Incorrect attribute value type",
		},
		{
			name:     "wrong type: string for number",
			src:      "plugin \"x\" {\n  config {\n    token = \"t\"\n    limit = \"lots\"\n  }\n}",
			wantLine: 4, want: "Incorrect attribute value type",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, t.TempDir(), tt.src)
			got, diags := config.DecodePluginConfig(cfg.Plugins[0], pluginSchema)
			if !diags.HasErrors() {
				t.Fatalf("DecodePluginConfig accepted it: %v", got)
			}
			d := diags.Errs()[0].(*hcl.Diagnostic)
			if msg := d.Summary + ": " + d.Detail; !strings.Contains(msg, tt.want) {
				t.Errorf("diagnostic %q does not contain %q", msg, tt.want)
			}
			if d.Subject == nil || d.Subject.Start.Line != tt.wantLine {
				t.Errorf("diagnostic %q at %v, want line %d", d.Summary, d.Subject, tt.wantLine)
			}
		})
	}
}

func TestDecodePluginConfigBrokenSchema(t *testing.T) {
	cfg := mustParse(t, t.TempDir(), "\nplugin \"x\" {}")
	_, diags := config.DecodePluginConfig(cfg.Plugins[0], []sdk.Field{{Name: "f", Type: sdk.FieldType(99)}})
	if !diags.HasErrors() || diags[0].Summary != "Broken plugin schema" || diags[0].Subject.Start.Line != 2 {
		t.Errorf("unknown field type: %v, want Broken plugin schema at line 2", diags)
	}
}

// file() in a plugin's config block should read relative to the config
// file's directory, as it does everywhere else in the file.
func TestDecodePluginConfigFileRelativeToConfigDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := mustParse(t, dir, "plugin \"x\" {\n  config {\n    token = file(\"token\")\n  }\n}")
	got, diags := config.DecodePluginConfig(cfg.Plugins[0], pluginSchema)
	if diags.HasErrors() {
		t.Fatalf("DecodePluginConfig: %v", diags)
	}
	if got["token"] != "tok" {
		t.Errorf("token = %q, want tok", got["token"])
	}
}

func TestFieldErrorDiagnostics(t *testing.T) {
	src := "plugin \"sales-histogram\" {\n  config {\n    counter = \"u99\"\n\n    timezone = \"Mars/Olympus\"\n  }\n}"
	tests := []struct {
		name     string
		errs     []sdk.FieldError
		wantLine []int
	}{
		{name: "named attribute", errs: []sdk.FieldError{{Field: "timezone", Message: "unknown time zone"}}, wantLine: []int{5}},
		{name: "two attributes", errs: []sdk.FieldError{{Field: "counter", Message: "c"}, {Field: "timezone", Message: "t"}}, wantLine: []int{3, 5}},
		{name: "no field: the plugin block", errs: []sdk.FieldError{{Message: "whole config is wrong"}}, wantLine: []int{1}},
		{name: "field not in the block: the config block", errs: []sdk.FieldError{{Field: "overflow", Message: "o"}}, wantLine: []int{2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, t.TempDir(), src)
			diags := config.FieldErrorDiagnostics(cfg.Plugins[0], tt.errs)
			if len(diags) != len(tt.wantLine) {
				t.Fatalf("got %d diagnostics, want %d", len(diags), len(tt.wantLine))
			}
			for i, d := range diags {
				if d.Severity != hcl.DiagError || d.Detail != tt.errs[i].Message || !strings.Contains(d.Summary, `"sales-histogram"`) {
					t.Errorf("diagnostic %d = %+v", i, d)
				}
				if d.Subject == nil || d.Subject.Start.Line != tt.wantLine[i] {
					t.Errorf("diagnostic %d at %v, want line %d", i, d.Subject, tt.wantLine[i])
				}
			}
		})
	}
}

// TestParseSandbox: the sandbox block and read_paths are decoded into every
// plugin, relative read_paths against the config's directory, and a
// plugin_user of root or an empty read_paths entry is an error at its line.
func TestParseSandbox(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		wantUser  string
		require   bool
		readPaths []string
		wantLine  int // of the error; 0: none
		want      string
	}{
		{name: "defaults", src: `plugin "x" {}`},
		{
			name:     "set",
			src:      "sandbox {\n  plugin_user = \"plugins\"\n  require = true\n}\nplugin \"x\" {\n  read_paths = [\"/opt/venv\", \"lib\"]\n}",
			wantUser: "plugins", require: true, readPaths: []string{"/opt/venv", "/etc/eventhost/lib"},
		},
		{name: "root", src: "sandbox {\n\n  plugin_user = \"root\"\n}\nplugin \"x\" {}", wantLine: 3, want: `plugin_user = "root": plugins never run as root`},
		{name: "uid 0", src: "sandbox {\n  plugin_user = \"0\"\n}\nplugin \"x\" {}", wantLine: 2, want: "plugins never run as root"},
		{name: "empty read path", src: "plugin \"x\" {\n  read_paths = [\"\"]\n}", wantLine: 2, want: "An empty path grants nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := config.Parse("/etc/eventhost/config.hcl", []byte(tt.src))
			if tt.want != "" {
				if !diags.HasErrors() || diags[0].Subject == nil || diags[0].Subject.Start.Line != tt.wantLine || !strings.Contains(diags.Error(), tt.want) {
					t.Fatalf("diags = %v, want an error at line %d containing %q", diags, tt.wantLine, tt.want)
				}
				return
			}
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			p := cfg.Plugins[0]
			if p.Sandbox.PluginUser != tt.wantUser || p.Sandbox.Require != tt.require || strings.Join(p.ReadPaths, ",") != strings.Join(tt.readPaths, ",") {
				t.Errorf("plugin sandbox %+v, read_paths %q; want user %q, require %v, read_paths %q", p.Sandbox, p.ReadPaths, tt.wantUser, tt.require, tt.readPaths)
			}
		})
	}
}

// TestLoadMissingFile: the diagnostic names the file at a real position,
// not "<nil>".
func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.hcl")
	_, diags := config.Load(path)
	if len(diags) != 1 || !diags.HasErrors() {
		t.Fatalf("diags = %v, want one error", diags)
	}
	d := diags[0]
	if d.Subject == nil || d.Subject.Filename != path || d.Subject.Start.Line != 1 {
		t.Errorf("subject = %v, want %s line 1", d.Subject, path)
	}
	if msg := d.Error(); !strings.HasPrefix(msg, path+":1,1-1: Cannot read config file; ") || strings.Contains(msg, "<nil>") {
		t.Errorf("diagnostic = %q", msg)
	}
}

// TestParseEffectLimits: the limits on a plugin's writes per order reach
// the policy, and an out-of-range one is an error at its line.
func TestParseEffectLimits(t *testing.T) {
	cfg, diags := config.Parse("/etc/eventhost/config.hcl", []byte("limits {\n  max_effects_per_order = 5\n  max_effect_bytes_per_order = 4096\n  max_bitfield_bits = 8192\n}\nplugin \"x\" {}"))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if l := cfg.EffectLimits; l.MaxEffects != 5 || l.MaxBytes != 4096 || l.MaxBitfieldBits != 8192 {
		t.Errorf("EffectLimits = %+v", l)
	}
	_, diags = config.Parse("/etc/eventhost/config.hcl", []byte("limits {\n  max_effects_per_order = 5\n  max_bitfield_bits = 10\n}\nplugin \"x\" {}"))
	if !diags.HasErrors() || diags[0].Subject == nil || diags[0].Subject.Start.Line != 3 || !strings.Contains(diags.Error(), "limits.max_bitfield_bits = 10 must be between 64 and 4294967296") {
		t.Errorf("diags = %v, want an error at line 3 about max_bitfield_bits", diags)
	}
}

// One order id always goes to one shard, and the ids spread over them all.
func TestStreamKeyFor(t *testing.T) {
	s := config.Stream{Key: "po", Shards: 4}
	seen := map[string]int{}
	for i := range 400 {
		id := fmt.Sprintf("2021-%07d", i)
		k := s.KeyFor(id)
		if k != s.KeyFor(id) || !slices.Contains(s.Keys(), k) {
			t.Fatalf("KeyFor(%s) = %s, not one fixed key of %q", id, k, s.Keys())
		}
		seen[k]++
	}
	for _, k := range s.Keys() {
		if seen[k] < 50 {
			t.Errorf("%d of 400 ids went to %s; want about 100 per shard (%v)", seen[k], k, seen)
		}
	}
	if k := (config.Stream{Key: "po"}).KeyFor("1"); k != "po" {
		t.Errorf("unsharded KeyFor = %s, want po", k)
	}
}
