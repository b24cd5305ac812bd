package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/podguard/podguard/logstream"
)

const streamLogsUsage = `Usage: podguard stream-logs [flags]

Streams every file in a log directory to stdout, each line prefixed with the
file's path: the log sidecar podguard injects runs it, so that
'kubectl logs POD -c <container>-logs' shows the app's log files. It follows
new files, rotation by rename and by copytruncate, printing each line once,
and says on stderr what it cannot read and how to fix it. On SIGTERM or
SIGINT it reads every file to its end once more and exits 0.

Exits 2 on bad usage, and 1 if it cannot write to stdout; a missing or
unreadable directory is reported and waited for, not an error.

Flags:
`

// streamLogsCommand runs `podguard stream-logs`.
func streamLogsCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("stream-logs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, streamLogsUsage); fs.PrintDefaults() }
	opts := logstream.Options{}
	fs.StringVar(&opts.Dir, "dir", os.Getenv(logstream.DirEnv), "directory to stream (default $"+logstream.DirEnv+")")
	fs.DurationVar(&opts.Poll, "poll", logstream.DefaultPoll, "how often to list the directory and read the files")
	fs.IntVar(&opts.MaxFiles, "max-files", logstream.DefaultMaxFiles, "most files followed at once")
	fs.IntVar(&opts.MaxDepth, "max-depth", logstream.DefaultMaxDepth, "levels of subdirectories followed (0: the directory's own files)")
	fs.IntVar(&opts.MaxLine, "max-line", logstream.DefaultMaxLine, "longest line printed whole, in bytes; longer lines are split")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: 2}
	}
	switch {
	case fs.NArg() > 0:
		return usageError("stream-logs takes no arguments, got %q", fs.Args())
	case opts.Dir == "":
		return usageError("stream-logs needs a directory: --dir or $%s", logstream.DirEnv)
	case opts.Poll < 10*time.Millisecond:
		return usageError("--poll must be at least 10ms, got %s", opts.Poll)
	case opts.MaxFiles < 1:
		return usageError("--max-files must be positive, got %d", opts.MaxFiles)
	case opts.MaxDepth < 0:
		return usageError("--max-depth must not be negative, got %d", opts.MaxDepth)
	case opts.MaxLine < 1:
		return usageError("--max-line must be positive, got %d", opts.MaxLine)
	}
	if opts.MaxDepth == 0 {
		opts.MaxDepth = -1 // in Options, 0 means the default
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	return logstream.Run(ctx, opts, stdout, stderr)
}
