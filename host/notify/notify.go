// Package notify speaks systemd's service notification protocol
// (sd_notify(3)): readiness, reloads, shutdown, status lines and watchdog
// pings. Outside systemd, with NOTIFY_SOCKET unset, every call does nothing,
// so the host runs the same under any supervisor.
package notify

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// Notifier sends notifications to the service manager that started the
// process. A nil *Notifier, or one made without NOTIFY_SOCKET, sends nothing.
// Sending never fails the host: a notification that cannot be delivered is
// logged, and systemd's own timeouts decide what that means.
type Notifier struct {
	logger   hclog.Logger
	send     func(state string) (bool, error)
	watchdog time.Duration
}

// FromEnv returns a Notifier for the socket named by NOTIFY_SOCKET, with the
// watchdog interval of WATCHDOG_USEC (when WATCHDOG_PID is unset or names this
// process). Without NOTIFY_SOCKET it returns nil, which sends nothing. It
// leaves the environment as it is. The error is a malformed
// WATCHDOG_USEC or WATCHDOG_PID; systemd never sets one, so the caller should
// refuse to start rather than be killed later for not pinging.
func FromEnv(logger hclog.Logger) (*Notifier, error) {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil, nil
	}
	wd, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		return nil, fmt.Errorf("read systemd watchdog settings: %w", err)
	}
	return &Notifier{
		logger:   logger,
		send:     func(state string) (bool, error) { return daemon.SdNotify(false, state) },
		watchdog: wd,
	}, nil
}

// Ready tells systemd that the host is up: subscribed, with every plugin
// answering. systemd holds `systemctl start` (and units ordered after this
// one) until it arrives. Call it again after a reload, once the new config is
// in force.
func (n *Notifier) Ready() { n.notify(daemon.SdNotifyReady) }

// Reloading tells systemd that a reload (SIGHUP) has begun; Ready must follow
// when it is done, or was rejected and the old config goes on. systemd (253
// and later) reads MONOTONIC_USEC to tell this reload from a later one; older
// versions ignore it.
func (n *Notifier) Reloading() {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		n.notify(daemon.SdNotifyReloading)
		return
	}
	n.notify(fmt.Sprintf("%s\nMONOTONIC_USEC=%d", daemon.SdNotifyReloading, ts.Nano()/1000))
}

// Stopping tells systemd that shutdown has begun: intake is stopping and what
// was received is being finished.
func (n *Notifier) Stopping() { n.notify(daemon.SdNotifyStopping) }

// Status sets the one-line status `systemctl status` shows. Line breaks are
// replaced, as they would end the STATUS= field.
func (n *Notifier) Status(format string, args ...any) {
	status := strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")
	n.notify("STATUS=" + status)
}

// WatchdogInterval is systemd's WatchdogSec for this process, or 0 when the
// watchdog is off (or n is nil).
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Watchdog pings systemd's watchdog at half its interval until ctx ends, but
// only while alive returns nil. An error from alive means the host is wedged:
// the ping is withheld (and the reason logged and shown as the status), and
// systemd kills and restarts the host once WatchdogSec passes without one.
// When alive recovers, pings resume. Without a watchdog it returns at once.
func (n *Notifier) Watchdog(ctx context.Context, alive func() error) {
	interval := n.WatchdogInterval() / 2
	if interval <= 0 {
		return
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	healthy := true
	for {
		// The first ping waits too: systemd arms the watchdog at READY=1.
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
		if err := alive(); err != nil {
			if healthy {
				n.logger.Error("host is not making progress; withholding the systemd watchdog ping", "error", err)
				n.Status("unhealthy: %v", err)
			}
			healthy = false
		} else {
			if !healthy {
				n.logger.Info("host is making progress again; resuming systemd watchdog pings")
				n.Status("making progress again")
			}
			healthy = true
			n.notify(daemon.SdNotifyWatchdog)
		}
	}
}

func (n *Notifier) notify(state string) {
	if n == nil {
		return
	}
	if _, err := n.send(state); err != nil {
		n.logger.Warn("could not notify systemd", "state", state, "error", err)
	}
}
