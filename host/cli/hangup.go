package cli

import (
	"os"
	"os/signal"
	"syscall"
)

// reloadOnHangup calls reload for each SIGHUP until stopped: the systemd
// unit sends SIGHUP for `systemctl reload`. It also keeps the signal's
// default action from ending the host and dropping the ids it holds. reload
// must not block (daemon.Daemon.Reload only asks for a reload). The
// returned func stops listening.
func reloadOnHangup(reload func()) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				reload()
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
