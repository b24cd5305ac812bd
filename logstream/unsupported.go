//go:build !linux

package logstream

import (
	"context"
	"fmt"
	"io"
	"runtime"
)

// run fails outside Linux: streaming follows files through openat and their
// device and inode, and the log sidecar it serves runs in podguard's Linux
// image. The package still builds, so that podguard's CLI (check, mutate,
// audit) builds for macOS and Windows.
func run(context.Context, Options, io.Writer, io.Writer) error {
	return fmt.Errorf("streaming logs needs Linux; this is %s", runtime.GOOS)
}
