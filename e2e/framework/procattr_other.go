//go:build !linux

package framework

import "syscall"

// sysProcAttr returns nil: the process-group and parent-death settings used
// on Linux are not portable.
func sysProcAttr() *syscall.SysProcAttr { return nil }
