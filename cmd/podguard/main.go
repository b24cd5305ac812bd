// Command podguard is a Kubernetes admission webhook for Pods: it fixes pods
// before they run and rejects the ones that would run but silently break.
//
//	podguard serve            run the TLS admission webhook server
//	podguard check            check manifests offline, as the webhook would
//	podguard mutate           print manifests with podguard's mutations applied
//	podguard audit            judge what already runs in a cluster, as the webhook would
//	podguard config validate  check a config file
//	podguard stream-logs      stream a log directory's files to stdout (the log sidecar)
//	podguard version          print the version (also: podguard --version)
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

const usage = `podguard: a Kubernetes admission webhook for Pods.

Usage:
  podguard serve [flags]              run the TLS admission webhook server
  podguard check -f PATH [flags]      check manifests offline, as the webhook would
  podguard mutate -f PATH [flags]     print manifests with podguard's mutations applied
  podguard audit [flags]              judge what already runs in a cluster, as the webhook would
  podguard config validate FILE...    check config files; exit 1 on errors
  podguard stream-logs [--dir DIR]    stream a log directory's files to stdout (the log sidecar)
  podguard version [-o json]          print the version (also: podguard --version)

Run 'podguard COMMAND -h' for a command's flags.
`

// exitError carries a process exit code to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run executes one podguard command and returns its exit code: 0 on
// success, 1 when a check found problems, 2 on usage errors and unreadable
// input.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(args[1:], stderr)
	case "check":
		err = checkCommand(args[1:], stdin, stdout, stderr)
	case "mutate":
		err = mutateCommand(args[1:], stdin, stdout, stderr)
	case "audit":
		err = auditCommand(args[1:], stdout, stderr)
	case "config":
		err = configCommand(args[1:], stdout, stderr)
	case "stream-logs":
		err = streamLogsCommand(args[1:], stdout, stderr)
	case "version", "--version":
		err = versionCommand(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "podguard: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(stderr, "podguard:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "podguard:", err)
	return 1
}

func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}
