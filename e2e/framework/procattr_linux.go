package framework

import "syscall"

// sysProcAttr puts a child in its own process group, so that a Ctrl-C in the
// terminal reaches only the parent, which then stops its children in order;
// and has the kernel kill the child if the parent dies without stopping it,
// so that no control-plane process outlives a crashed or timed-out test.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
