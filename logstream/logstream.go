// Package logstream streams the log files an application writes in a
// directory to an output, one line at a time, each prefixed with the file's
// path relative to the directory ("[catalina.log] ..."). It is the engine of
// `podguard stream-logs`, which podguard's log sidecar runs so that
// `kubectl logs POD -c <container>-logs` shows the app's log files.
//
// It polls: every Options.Poll it lists the directory (and its
// subdirectories, to Options.MaxDepth, without following symlinks) and reads
// what each file gained. Polling works on every volume type (emptyDir, NFS,
// hostPath), costs one fstat per file and poll, and needs no inotify watch.
//
// A file is followed by its identity (device and inode), through an open file
// descriptor, not by its name. So:
//
//   - files present at start are read from their beginning, and so are files
//     created later;
//   - a file renamed by rotation (catalina.log -> catalina.log.1) keeps being
//     read where it was, and the new catalina.log is a new file: every line is
//     printed once, however many renames there are. Lines keep the name the
//     file had when it was first seen;
//   - a deleted file is drained to its end, then closed, so that its space is
//     freed;
//   - a truncated file (its size fell below what was read, or its first bytes
//     or the bytes just before the read offset changed) is read again from its
//     beginning;
//   - a copytruncate copy (catalina.log copied to catalina.log.1, then
//     catalina.log truncated) is recognised as a copy: its first bytes, and its
//     bytes at the end of what it shares with the original, equal the
//     original's. It continues the original's stream where the original was
//     read up to, so the copied lines are printed once and the lines written
//     between the last read and the truncation are not lost. What a file
//     taken for a copy gains is compared with the original's bytes at the
//     same offsets (or, for the copy of a truncated or closed file, with the
//     first bytes and the bytes before the read offset that were kept of
//     it): a file whose bytes differ (a new CSV file that shared only its
//     header line with another) is a file of its own, read from the start
//     of the line where they differ; the bytes before were printed as the
//     other file's.
//
// Compressed rotations (.gz, .bz2, .xz, .zst, .zip, .lz4, or such a magic
// number) are skipped, with one note. A partial last line is held until its
// newline arrives (a line longer than Options.MaxLine is split), and is
// printed when the file goes away and when streaming stops.
//
// What cannot be read (a file or directory this process has no permission
// for) is reported on the notes output once per state, with the file's mode
// and owner, this process's identity and the fix; it is retried every poll,
// and its recovery is reported too.
//
// Memory does not depend on file sizes: per file, at most one partial line
// (Options.MaxLine) and a few KiB of state; at most Options.MaxFiles files
// are open at once.
package logstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// DirEnv is the environment variable that names the directory to stream; the
// log sidecar gets it.
const DirEnv = "PODGUARD_LOG_DIR"

// Defaults of Options.
const (
	// DefaultPoll is how often the directory is listed and files are read:
	// a line shows in kubectl logs within half a second, and a poll of a few
	// files costs a few system calls.
	DefaultPoll = 500 * time.Millisecond
	// DefaultMaxFiles bounds the open files, and so the memory held in
	// partial lines (DefaultMaxFiles × DefaultMaxLine = 16 MiB at worst).
	DefaultMaxFiles = 256
	// DefaultMaxDepth is how many levels of subdirectories are followed.
	DefaultMaxDepth = 4
	// DefaultMaxLine is the longest line printed whole; a longer one is
	// split into lines of this length.
	DefaultMaxLine = 64 << 10
)

// Options configure Run. Zero values take the defaults above.
type Options struct {
	// Dir is the directory to stream. Required.
	Dir string
	// Poll is the interval between two reads of the directory.
	Poll time.Duration
	// MaxFiles is the most files followed (open) at once.
	MaxFiles int
	// MaxDepth is how many levels of subdirectories of Dir are followed. A
	// negative MaxDepth follows Dir's own files only.
	MaxDepth int
	// MaxLine is the longest line printed whole.
	MaxLine int
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("no directory to stream")
	}
	if o.Poll < 0 || o.MaxFiles < 0 || o.MaxLine < 0 {
		return o, errors.New("negative poll interval, file or line limit")
	}
	if o.Poll == 0 {
		o.Poll = DefaultPoll
	}
	if o.MaxFiles == 0 {
		o.MaxFiles = DefaultMaxFiles
	}
	switch {
	case o.MaxDepth == 0:
		o.MaxDepth = DefaultMaxDepth
	case o.MaxDepth < 0:
		o.MaxDepth = 0
	}
	if o.MaxLine == 0 {
		o.MaxLine = DefaultMaxLine
	}
	return o, nil
}

// Run streams the files in opts.Dir to out until ctx is done. Then it reads
// every file to its end once more, prints held partial lines, and returns
// nil: a native sidecar is stopped after its app, and the app's last lines
// must not be lost. Notes (unreadable files, skipped files, limits) go to
// notes, one line each.
//
// A directory that does not exist or cannot be read is reported and waited
// for, not an error. Run returns an error only for invalid options and when
// writing to out fails, and, outside Linux, at once: the sidecar runs in
// podguard's Linux image.
func Run(ctx context.Context, opts Options, out, notes io.Writer) error {
	opts, err := opts.withDefaults()
	if err != nil {
		return err
	}
	return run(ctx, opts, out, notes)
}

// identity is who this process is, for permission messages.
type identity struct {
	uid, gid int
	groups   []int
}

func currentIdentity() identity {
	groups, _ := os.Getgroups()
	return identity{uid: os.Geteuid(), gid: os.Getegid(), groups: groups}
}

func (id identity) String() string {
	return fmt.Sprintf("uid %d gid %d with groups %v", id.uid, id.gid, id.groups)
}

// inGroup reports whether gid is this process's group or one of its
// supplementary groups.
func (id identity) inGroup(gid uint32) bool {
	if uint32(id.gid) == gid {
		return true
	}
	for _, g := range id.groups {
		if uint32(g) == gid {
			return true
		}
	}
	return false
}
