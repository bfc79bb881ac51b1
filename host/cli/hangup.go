package cli

import (
	"os"
	"os/signal"
	"syscall"

	"github.com/hashicorp/go-hclog"
)

// ignoreHangup keeps SIGHUP from killing the daemon until it stops: the
// systemd unit sends SIGHUP for `systemctl reload`, and the signal's default
// action would end the host and drop the ids it holds. Reloading the config
// is not built yet (issue 4); when it is, it replaces this and wraps the
// reload in Notifier.Reloading and Notifier.Ready. The returned func stops
// listening.
func ignoreHangup(logger hclog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				logger.Warn("SIGHUP ignored: reloading the config is not supported yet; restart eventhost to apply a new config")
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}
