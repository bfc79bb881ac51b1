package version

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	vcs := func(rev, modified string) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{GoVersion: "go1.99.0", Main: debug.Module{Version: "v0.0.0-20261201-abcdef"},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}}, true
		}
	}
	none := func() (*debug.BuildInfo, bool) { return nil, false }
	tests := []struct {
		name            string
		version, commit string
		read            func() (*debug.BuildInfo, bool)
		want            Info
	}{
		{"linker flags win", "v1.2.3", "0123abc", vcs("ffff", "true"),
			Info{Version: "v1.2.3", Commit: "0123abc", GoVersion: "go1.99.0"}},
		{"build info when not linked in", "", "", vcs("ffff", "false"),
			Info{Version: "v0.0.0-20261201-abcdef", Commit: "ffff", GoVersion: "go1.99.0"}},
		{"a dirty tree says so", "", "", vcs("ffff", "true"),
			Info{Version: "v0.0.0-20261201-abcdef", Commit: "ffff+dirty", GoVersion: "go1.99.0"}},
		{"nothing known", "", "", none,
			Info{Version: Unknown, Commit: Unknown, GoVersion: runtime.Version()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := resolve(tt.version, tt.commit, tt.read)
			tt.want.Platform = runtime.GOOS + "/" + runtime.GOARCH
			if got != tt.want {
				t.Errorf("resolve = %+v, want %+v", got, tt.want)
			}
		})
	}
}
