package daemon

import (
	"slices"
	"strings"
	"testing"

	"github.com/eventhost/eventhost/host/config"
)

func TestRestartOnly(t *testing.T) {
	const base = `
redis {
  address = "127.0.0.1:6379"
}
source "pubsub" { channels = ["purchase_orders"] }
batch { max_orders = 256 }
log { level = "info" }
plugin "sales-histogram" {}
`
	parse := func(t *testing.T, src string) *config.Config {
		t.Helper()
		cfg, diags := config.Parse("/etc/eventhost/config.hcl", []byte(src))
		if diags.HasErrors() {
			t.Fatalf("parse: %v", diags)
		}
		return cfg
	}
	tests := []struct {
		name     string
		from, to string
		want     []string
	}{
		{"same", base, base, nil},
		{"plugins, plugin_dir and log level may change", base,
			strings.Replace(base, `level = "info"`, `level = "debug"`, 1) + "plugin_dir = \"/opt/p\"\nplugin \"top-customers\" {}\n", nil},
		{"redis address", base, strings.Replace(base, "6379", "6380", 1), []string{"redis"}},
		{"redis password", base, strings.Replace(base, `address = "127.0.0.1:6379"`, `address = "127.0.0.1:6379"
  password = "s3cret"`, 1), []string{"redis"}},
		{"channels", base, strings.Replace(base, `["purchase_orders"]`, `["purchase_orders", "returns"]`, 1), []string{"source"}},
		{"source kind", base, strings.Replace(base, `source "pubsub" { channels = ["purchase_orders"] }`, `source "stream" { stream = "purchase_orders" }`, 1),
			[]string{"source"}},
		{"batch and metrics", base, strings.Replace(base, "256", "512", 1) + `metrics { listen = "127.0.0.1:9100" }`,
			[]string{"batch", "metrics"}},
		{"prefix and dead letters", base, base + `order_key_prefix = "po:"
dead_letter { max_len = 10 }
`, []string{"order_key_prefix", "dead_letter"}},
		{"limits", base, base + "limits { max_qty = 10 }\n", []string{"limits"}},
		{"log format", base, strings.Replace(base, `log { level = "info" }`, `log {
  level  = "info"
  format = "json"
}`, 1), []string{"log format"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := restartOnly(parse(t, tt.from), parse(t, tt.to)); !slices.Equal(got, tt.want) {
				t.Errorf("restartOnly = %q, want %q", got, tt.want)
			}
		})
	}
}
