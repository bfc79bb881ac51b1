package cli

import (
	"fmt"
	"io"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/eventhost/eventhost/host/config"
	"github.com/eventhost/eventhost/host/metrics"
	"github.com/eventhost/eventhost/host/sandbox"
)

// planSandbox works out the plugins' sandbox on this host. An unknown or
// privileged plugin_user, and a missing protection under
// sandbox { require = true }, are the config's errors.
func planSandbox(cfg *config.Config) (sandbox.Plan, error) {
	plan, err := sandbox.Probe(cfg.Sandbox, os.Environ())
	if err != nil {
		return plan, usageError{fmt.Errorf("sandbox: %w", err)}
	}
	if cfg.Sandbox.Require {
		if err := plan.Require(); err != nil {
			return plan, usageError{err}
		}
	}
	return plan, nil
}

// logSandbox logs each missing protection as a warning and sets the
// eventhost_sandbox_protection gauges.
func logSandbox(plan sandbox.Plan, logger hclog.Logger, m *metrics.Metrics) {
	for _, s := range plan.Protections {
		v := 0.0
		if s.Available {
			v = 1
		} else {
			logger.Warn("plugin sandbox protection unavailable", "protection", s.Name, "why", s.Why)
		}
		m.SandboxProtection.WithLabelValues(s.Name).Set(v)
	}
	user := plan.User
	if user == "" {
		user = fmt.Sprintf("the host's own (uid %d)", os.Geteuid())
	}
	logger.Info("plugin sandbox", "user", user, "landlock_abi", plan.LandlockABI, "missing", len(plan.Missing()))
}

// printSandbox writes the sandbox's protections for validate.
func printSandbox(w io.Writer, plan sandbox.Plan) {
	user := plan.User
	if user == "" {
		user = fmt.Sprintf("the host's user (uid %d)", os.Geteuid())
	}
	fmt.Fprintf(w, "sandbox: plugins run as %s\n", user)
	for _, s := range plan.Protections {
		if s.Available {
			fmt.Fprintf(w, "sandbox: %s: ok\n", s.Name)
		} else {
			fmt.Fprintf(w, "sandbox: %s: MISSING: %s\n", s.Name, s.Why)
		}
	}
}
