package config_test

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/eventhost/eventhost/host/config"
)

// FuzzParse: no file makes Parse panic; every error it reports has a
// position in the file; and a config it accepts keeps every rule validate
// promises (a usable order key prefix, a known log level, sane limits,
// named plugins, a host:port to serve metrics on).
func FuzzParse(f *testing.F) {
	for _, name := range []string{"../../config.hcl", "../../deploy/config.hcl", "../../examples/tutorial.hcl"} {
		src, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	for _, s := range []string{
		``,
		`plugin "x" {}`,
		`plugin "" {}`,
		"order_key_prefix = \"po:*\"\nplugin \"x\" {}",
		"limits {\n max_qty = 10\n min_ts = 5\n max_ts = 4\n max_cost = 1e300\n cost_decimals = 9\n}\nplugin \"x\" {}",
		"log { level = \"verbose\" }\nmetrics { listen = \"9090\" }\nplugin \"x\" {}",
		"source \"stream\" { stream = \"s\" }\nbatch { max_orders = 100000 }\nplugin \"x\" { channels = [\"s\"] }",
		"dead_letter { max_len = -1 }\nplugin \"x\" { allow_keys = [\"a:*\", \"\", \"a[\"] }",
		"redis { password = env(\"HOME\") }\nplugin \"x\" { config { a = 1 } }",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, src []byte) {
		file := filepath.Join(dir, "eventhost.hcl")
		cfg, diags := config.Parse(file, src)
		for _, d := range diags {
			if d.Severity == hcl.DiagError && d.Subject == nil {
				t.Errorf("diagnostic without a position: %s", d.Error())
			}
		}
		if diags.HasErrors() {
			if cfg != nil {
				t.Errorf("config returned with errors")
			}
			return
		}
		if cfg.OrderKeyPrefix == "" || strings.ContainsAny(cfg.OrderKeyPrefix, "*?[]\\") {
			t.Errorf("order_key_prefix %q accepted", cfg.OrderKeyPrefix)
		}
		if !slices.Contains(config.LogLevels, cfg.Log.Level) {
			t.Errorf("log level %q accepted", cfg.Log.Level)
		}
		l := cfg.Limits
		if l.MaxIDBytes < 1 || l.MaxIDBytes > 1024 || l.MaxOrderBytes < 1 || l.MaxFieldBytes < 1 || l.MaxFieldBytes > l.MaxOrderBytes ||
			l.MaxQty < 1 || !(l.MaxCost > 0) || l.CostDecimals < 0 || l.CostDecimals > 9 || l.MinTS < 1 || l.MaxTS < l.MinTS {
			t.Errorf("limits %+v accepted", l)
		}
		if cfg.Batch.MaxOrders < 1 || int64(cfg.Batch.MaxOrders)*int64(l.MaxOrderBytes) > 64<<20 {
			t.Errorf("batch of %d orders of %d bytes accepted", cfg.Batch.MaxOrders, l.MaxOrderBytes)
		}
		if cfg.Metrics.Listen != "" {
			if _, port, err := net.SplitHostPort(cfg.Metrics.Listen); err != nil || port == "" {
				t.Errorf("metrics listen %q accepted", cfg.Metrics.Listen)
			}
		}
		if cfg.DeadLetter.MaxLen < 0 {
			t.Errorf("dead_letter.max_len %d accepted", cfg.DeadLetter.MaxLen)
		}
		if len(cfg.Plugins) == 0 {
			t.Errorf("no plugins accepted")
		}
		for _, p := range cfg.Plugins {
			if p.Name == "" || strings.ContainsAny(p.Name, "/\x00") {
				t.Errorf("plugin name %q accepted", p.Name)
			}
		}
	})
}
