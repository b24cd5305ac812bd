package framework

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is a child process whose stdout and stderr go to a log file.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	// diesOnSIGTERM marks a process that has no SIGTERM handler, so that
	// being killed by SIGTERM is its clean stop.
	diesOnSIGTERM bool

	done    chan struct{} // closed once the process has exited
	waitErr error         // what cmd.Wait returned; set before done is closed

	stopOnce sync.Once
	stopErr  error
}

// startProc starts bin with args, appending its output to logPath. The
// process outlives any context: only stop and kill end it.
func startProc(name, logPath, bin string, args ...string) (*proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s log: %w", name, err)
	}
	// A header per start, so that restarts in one log file stay apart.
	fmt.Fprintf(logFile, "=== %s %s %s\n", time.Now().Format(time.RFC3339), bin, strings.Join(args, " "))

	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has exited.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// exitError describes how a process that exited by itself ended. It is only
// valid once done is closed.
func (p *proc) exitError() error {
	if p.waitErr != nil {
		return fmt.Errorf("%s exited: %w", p.name, p.waitErr)
	}
	return fmt.Errorf("%s exited with status 0", p.name)
}

// stop sends SIGTERM, waits up to timeout for the process to exit, and kills
// it after that. It returns nil when the process exited with status 0 after
// SIGTERM, and an error when it had already exited, exited with another
// status, or had to be killed. Later calls return the first call's result.
func (p *proc) stop(timeout time.Duration) error {
	p.stopOnce.Do(func() { p.stopErr = p.terminate(timeout) })
	return p.stopErr
}

func (p *proc) terminate(timeout time.Duration) error {
	if p.exited() {
		return fmt.Errorf("before it was stopped: %w", p.exitError())
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.killAndWait()
		return fmt.Errorf("sending SIGTERM to %s: %w", p.name, err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		if p.waitErr == nil || (p.diesOnSIGTERM && killedBy(p.waitErr, syscall.SIGTERM)) {
			return nil
		}
		return fmt.Errorf("%s exited after SIGTERM: %w", p.name, p.waitErr)
	case <-timer.C:
		p.killAndWait()
		return fmt.Errorf("%s did not exit within %s of SIGTERM and was killed", p.name, timeout)
	}
}

// killedBy reports whether err is the exit error of a process killed by sig.
func killedBy(err error, sig syscall.Signal) bool {
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return false
	}
	status, ok := exitErr.Sys().(syscall.WaitStatus)
	return ok && status.Signaled() && status.Signal() == sig
}

// kill sends SIGKILL and waits for the process to exit. A later stop returns
// nil.
func (p *proc) kill() {
	p.stopOnce.Do(p.killAndWait)
}

func (p *proc) killAndWait() {
	// The only error is that the process is gone already, which is the goal.
	_ = p.cmd.Process.Kill()
	<-p.done
}

// logTail returns the last lines of the log file at path, for error messages.
func logTail(path string, lines int) string {
	const maxBytes = 64 << 10
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	defer f.Close()
	if info, err := f.Stat(); err == nil && info.Size() > maxBytes {
		if _, err := f.Seek(-maxBytes, io.SeekEnd); err != nil {
			return fmt.Sprintf("(cannot read %s: %v)", path, err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	all := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return string(bytes.Join(all, []byte("\n")))
}

// withLogTail appends the end of a log file to err.
func withLogTail(err error, name, logPath string) error {
	return fmt.Errorf("%w\n--- last lines of %s log %s ---\n%s\n---", err, name, logPath, logTail(logPath, 40))
}
