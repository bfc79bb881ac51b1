// Package version says which build of eventhost is running: the version and
// commit that `make build` stamps in with -ldflags -X, or, for a plain
// `go build` or `go install`, what the Go toolchain recorded from the module
// and version control.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time by the Makefile's build target:
//
//	-ldflags "-X github.com/eventhost/eventhost/host/version.version=v1.2.3 -X github.com/eventhost/eventhost/host/version.commit=abc123"
//
// They are variables only because -X can set nothing else; nothing assigns
// them at run time.
var (
	version string
	commit  string
)

// Unknown stands for a version or commit that neither the linker nor the
// toolchain's build information supplied.
const Unknown = "unknown"

// Info is one build's identity.
type Info struct {
	Version   string // "v1.2.3", a pseudo-version, "(devel)", or Unknown
	Commit    string // the VCS revision, "+dirty" when the tree had changes; or Unknown
	GoVersion string // the toolchain that built it
	Platform  string // GOOS/GOARCH
}

// Get returns the running binary's Info: the -X values where set, else the
// build information, else Unknown.
func Get() Info {
	return resolve(version, commit, debug.ReadBuildInfo)
}

// resolve is Get with its inputs passed in, for tests.
func resolve(linkedVersion, linkedCommit string, read func() (*debug.BuildInfo, bool)) Info {
	info := Info{Version: linkedVersion, Commit: linkedCommit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := read(); ok {
		if info.Version == "" && bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		if info.Commit == "" {
			var rev string
			dirty := false
			for _, s := range bi.Settings {
				switch s.Key {
				case "vcs.revision":
					rev = s.Value
				case "vcs.modified":
					dirty = s.Value == "true"
				}
			}
			if rev != "" && dirty {
				rev += "+dirty"
			}
			info.Commit = rev
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
	}
	if info.Version == "" {
		info.Version = Unknown
	}
	if info.Commit == "" {
		info.Commit = Unknown
	}
	return info
}

// String is the line `eventhost version` prints.
func (i Info) String() string {
	return fmt.Sprintf("eventhost %s (commit %s, %s, %s)", i.Version, i.Commit, i.GoVersion, i.Platform)
}
