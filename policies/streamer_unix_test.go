//go:build unix

package policies

import (
	"os/exec"
	"syscall"
)

// The streamer starts background tails: run it in its own process group so
// that the test can stop all of them.
func streamerProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func killStreamer(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
}
