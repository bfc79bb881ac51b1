package sandbox

import (
	"encoding/json"
	"fmt"
)

// LauncherArg is the hidden first argument that turns the eventhost binary
// into the launcher: `eventhost __sandbox-exec <spec as JSON>`. main checks
// for it before anything else and calls LauncherMain.
const LauncherArg = "__sandbox-exec"

// Spec is what the launcher needs to start one plugin process. It travels
// in the launcher's argv, so it holds no secrets.
type Spec struct {
	// Binary is the plugin binary's absolute path; SHA256 its pin, checked
	// by the launcher on the very file it executes ("" for none).
	Binary string `json:"binary"`
	SHA256 string `json:"sha256,omitempty"`
	// Dir is the process' private directory (its socket and its TMPDIR),
	// the one place it may write.
	Dir string `json:"dir"`
	// ReadPaths are the block's read_paths.
	ReadPaths []string `json:"read_paths,omitempty"`
	// UID and GID are the plugin's identity; -1 keeps the host's.
	UID int `json:"uid"`
	GID int `json:"gid"`
	// Parent is the host's pid: a launcher whose parent died before it
	// set its own parent-death signal exits instead of running orphaned.
	Parent int `json:"parent"`
	// Apply lists the protections to apply; the launcher fails rather than
	// skip one.
	Apply []string `json:"apply"`
}

func (s Spec) encode() (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encode launcher spec: %w", err)
	}
	return string(b), nil
}

func decodeSpec(arg string) (Spec, error) {
	var s Spec
	if err := json.Unmarshal([]byte(arg), &s); err != nil {
		return Spec{}, fmt.Errorf("decode launcher spec: %w", err)
	}
	if s.Binary == "" || s.Dir == "" {
		return Spec{}, fmt.Errorf("launcher spec without binary or dir: %s", arg)
	}
	return s, nil
}
