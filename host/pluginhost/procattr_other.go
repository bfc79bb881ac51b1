//go:build !linux

package pluginhost

import "syscall"

// childProcAttr has no parent-death signal outside Linux; plugins built with
// sdk exit by themselves when they notice they were orphaned.
func childProcAttr() *syscall.SysProcAttr { return nil }
