package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/eventhost/eventhost/host/version"
)

// versionCmd prints the build's version and commit (see host/version).
func versionCmd(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, version.Get())
	return nil
}
