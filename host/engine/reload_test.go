package engine

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/sdk"
)

// block parses a config holding the plugin block p (after the blocks in
// before) and returns that plugin.
func block(t *testing.T, before, p string) config.Plugin {
	t.Helper()
	src := `source "pubsub" { channels = ["a", "b"] }` + "\n" + before + "\n" + p
	cfg, diags := config.Parse("/etc/eventhost/eventhost.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatalf("parse: %v", diags)
	}
	return cfg.Plugins[len(cfg.Plugins)-1]
}

func TestLaunchedChanges(t *testing.T) {
	t.Setenv("TOP_KEY", "top_customers")
	const base = `plugin "top" {
  timeout = "2s"
  config {
    score = "qty"
    key   = env("TOP_KEY")
  }
}`
	schema := []sdk.Field{{Name: "score", Type: sdk.TypeString}, {Name: "key", Type: sdk.TypeString}}
	was := block(t, "", base)
	values, diags := config.DecodePluginConfig(was, schema)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	l := launched{cfg: was, sum: "aaaa", schema: schema, values: values}

	tests := []struct {
		name   string
		before string
		block  string
		sum    string
		env    string // TOP_KEY
		want   []string
	}{
		{name: "same block", block: base},
		{name: "moved down, reformatted, commented", before: "plugin \"other\" {}\n\n# the leaderboard\n",
			block: "plugin \"top\" {\n  # faster\n  timeout = \"2000ms\"\n  config {\n    key = env(\"TOP_KEY\")\n    score = \"qty\"\n  }\n}"},
		{name: "binary content", block: base, sum: "bbbb", want: []string{"binary"}},
		{name: "config value", block: strings.Replace(base, `"qty"`, `"cost"`, 1), want: []string{"config"}},
		{name: "config value read by env()", block: base, env: "top_customers:v2", want: []string{"config"}},
		{name: "config attribute dropped", block: strings.Replace(base, `score = "qty"`, "", 1), want: []string{"config"}},
		{name: "path", block: strings.Replace(base, "{\n", "{\n  path = \"/opt/top\"\n", 1), want: []string{"path"}},
		{name: "sha256 pin", block: strings.Replace(base, "{\n", "{\n  sha256 = \""+strings.Repeat("ab", 32)+"\"\n", 1), want: []string{"sha256"}},
		{name: "channels", block: strings.Replace(base, "{\n", "{\n  channels = [\"a\"]\n", 1), want: []string{"channels"}},
		{name: "timeout and max_attempts", block: strings.Replace(base, `"2s"`, "\"3s\"\n  max_attempts = 1", 1),
			want: []string{"timeout", "max_attempts"}},
		{name: "restart settings", block: strings.Replace(base, "{\n", "{\n  restart_limit = 9\n  restart_window = \"5m\"\n", 1),
			want: []string{"restart_limit", "restart_window"}},
		{name: "allow_keys", block: strings.Replace(base, "{\n", "{\n  allow_keys = [\"top_customers\"]\n", 1), want: []string{"allow_keys"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.env != "" {
				t.Setenv("TOP_KEY", tt.env)
			}
			sum := tt.sum
			if sum == "" {
				sum = l.sum
			}
			got := l.changes(block(t, tt.before, tt.block), sum)
			if !slices.Equal(got, tt.want) {
				t.Errorf("changes = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestLaunchedChangesCoversPlugin fails when config.Plugin gains a field
// that launched.changes neither compares nor knowingly ignores: a setting a
// reload would silently not apply.
func TestLaunchedChangesCoversPlugin(t *testing.T) {
	known := map[string]string{
		"Name": "the plugin's identity", "Range": "a position", "AllowKeysRange": "a position",
		"Path": "compared", "Channels": "compared", "Timeout": "compared", "SHA256": "compared",
		"MaxAttempts": "compared", "RestartLimit": "compared", "RestartWindow": "compared",
		"AllowKeys": "compared", "Body": "compared by its decoded values",
		"ReadPaths": "compared", "Sandbox": "compared (plugin_user, require; its range is a position)",
	}
	typ := reflect.TypeOf(config.Plugin{})
	for i := range typ.NumField() {
		if name := typ.Field(i).Name; known[name] == "" {
			t.Errorf("config.Plugin.%s is new: compare it in launched.changes (or say here why a reload may ignore it)", name)
		}
	}
}
