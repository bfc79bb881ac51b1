package config_test

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/eventhost/eventhost/host/config"
)

func TestParseTopology(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		src  string
		want config.Redis
	}{
		{
			name: "single node",
			src:  "redis { address = \"r:1\" }\nplugin \"x\" {}",
			want: config.Redis{Address: "r:1"},
		},
		{
			name: "sentinel",
			src: "redis {\n username = \"eh\"\n password = \"pw\"\n db = 2\n sentinel {\n master_name = \"orders\"\n" +
				" addresses = [\"s1:26379\", \"s2:26379\"]\n username = \"sen\"\n password = \"spw\"\n }\n}\nplugin \"x\" {}",
			want: config.Redis{Username: "eh", Password: "pw", DB: 2, Sentinel: &config.Sentinel{
				MasterName: "orders", Addresses: []string{"s1:26379", "s2:26379"}, Username: "sen", Password: "spw"}},
		},
		{
			name: "cluster",
			src:  "redis {\n username = \"eh\"\n cluster {\n addresses = [\"n1:7000\", \"[::1]:7001\"]\n }\n}\nplugin \"x\" {}",
			want: config.Redis{Username: "eh", Cluster: &config.Cluster{Addresses: []string{"n1:7000", "[::1]:7001"},
				WaitReplicas: config.DefaultClusterWaitReplicas, WaitTimeout: config.DefaultClusterWaitTimeout}},
		},
		{
			name: "cluster without WAIT",
			src:  "redis {\n cluster {\n addresses = [\"n1:7000\"]\n wait_replicas = 0\n wait_timeout = \"250ms\"\n }\n}\nplugin \"x\" {}",
			want: config.Redis{Cluster: &config.Cluster{Addresses: []string{"n1:7000"}, WaitTimeout: 250 * time.Millisecond}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustParse(t, dir, tt.src).Redis
			got.DialTimeout = 0
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseTopologyErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name     string
		src      string
		wantLine int
		want     string
	}{
		{
			name:     "sentinel and cluster",
			src:      "redis {\n sentinel {\n master_name = \"m\"\n addresses = [\"s:1\"]\n }\n cluster {\n addresses = [\"n:1\"]\n }\n}\nplugin \"x\" {}",
			wantLine: 6, want: "not both",
		},
		{
			name:     "address beside sentinel",
			src:      "redis {\n\n address = \"r:1\"\n sentinel {\n master_name = \"m\"\n addresses = [\"s:1\"]\n }\n}\nplugin \"x\" {}",
			wantLine: 3, want: "remove address",
		},
		{
			name:     "sentinel without master_name",
			src:      "redis {\n sentinel {\n addresses = [\"s:1\"]\n }\n}\nplugin \"x\" {}",
			wantLine: 2, want: "needs master_name",
		},
		{
			name:     "sentinel without addresses",
			src:      "redis {\n sentinel {\n master_name = \"m\"\n }\n}\nplugin \"x\" {}",
			wantLine: 2, want: "needs addresses",
		},
		{
			name:     "sentinel address without port",
			src:      "redis {\n sentinel {\n master_name = \"m\"\n\n addresses = [\"s1\"]\n }\n}\nplugin \"x\" {}",
			wantLine: 5, want: `sentinel address "s1" is not host:port`,
		},
		{
			name:     "cluster address with a bad port",
			src:      "redis {\n cluster {\n addresses = [\"n:1\", \"n:99999\"]\n }\n}\nplugin \"x\" {}",
			wantLine: 3, want: `cluster address "n:99999" is not host:port`,
		},
		{
			name:     "cluster address twice",
			src:      "redis {\n cluster {\n addresses = [\"n:1\", \"n:1\"]\n }\n}\nplugin \"x\" {}",
			wantLine: 3, want: `"n:1" is listed twice`,
		},
		{
			name:     "db on a cluster",
			src:      "redis {\n\n db = 3\n cluster {\n addresses = [\"n:1\"]\n }\n}\nplugin \"x\" {}",
			wantLine: 3, want: "database 0 only",
		},
		{
			name:     "negative wait_replicas",
			src:      "redis {\n cluster {\n addresses = [\"n:1\"]\n\n wait_replicas = -1\n }\n}\nplugin \"x\" {}",
			wantLine: 5, want: "0 for none",
		},
		{
			name:     "bad wait_timeout",
			src:      "redis {\n cluster {\n addresses = [\"n:1\"]\n wait_timeout = \"soon\"\n }\n}\nplugin \"x\" {}",
			wantLine: 4, want: "not a positive duration",
		},
		{
			name:     "unknown sentinel attribute",
			src:      "redis {\n sentinel {\n master_name = \"m\"\n addresses = [\"s:1\"]\n master = \"x\"\n }\n}\nplugin \"x\" {}",
			wantLine: 5, want: `"master" is not expected here`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, diags := parse(t, dir, tt.src)
			if !diags.HasErrors() {
				t.Fatalf("Parse accepted it: %+v", cfg.Redis)
			}
			if n := len(diags.Errs()); n != 1 {
				t.Errorf("got %d errors, want 1: %v", n, diags)
			}
			d := diags.Errs()[0].(*hcl.Diagnostic)
			if msg := d.Summary + ": " + d.Detail; !strings.Contains(msg, tt.want) {
				t.Errorf("diagnostic %q does not contain %q", msg, tt.want)
			}
			if d.Subject == nil {
				t.Fatalf("diagnostic %q has no subject, want line %d", d.Summary, tt.wantLine)
			}
			if d.Subject.Start.Line != tt.wantLine || d.Subject.Filename != filepath.Join(dir, "eventhost.hcl") {
				t.Errorf("diagnostic %q at %s:%d, want line %d", d.Summary, d.Subject.Filename, d.Subject.Start.Line, tt.wantLine)
			}
		})
	}
}
