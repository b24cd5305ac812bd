//go:build linux

package logstream

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"syscall"
	"unicode"
)

// notef writes one note line.
func (s *streamer) notef(format string, args ...any) {
	io.WriteString(s.notes, "podguard stream-logs: "+fmt.Sprintf(format, args...)+"\n")
}

// quoteLabel makes a path safe to print on one line.
func quoteLabel(rel string) string {
	if strings.ContainsFunc(rel, unicode.IsControl) {
		return strconv.Quote(rel)
	}
	return rel
}

// report notes a problem with a path, unless the same problem (state) was
// noted already.
func (s *streamer) report(key, state, msg string) {
	if p := s.problems[key]; p != nil {
		p.pass = s.passes
		if p.state == state {
			return
		}
		p.state = state
	} else {
		s.problems[key] = &problem{state: state, pass: s.passes}
	}
	s.notef("%s", msg)
}

// resolved notes that a path reported before can be read now.
func (s *streamer) resolved(key, verb string) {
	if _, ok := s.problems[key]; !ok {
		return
	}
	delete(s.problems, key)
	name := strings.TrimSuffix(key, "/")
	if name == "" {
		name = s.opts.Dir
	}
	s.notef("can %s %s now", verb, quoteLabel(name))
}

// pruneProblems forgets the problems of paths that were not listed: they
// are noted again if they come back unreadable.
func (s *streamer) pruneProblems() {
	for k, p := range s.problems {
		if p.pass != s.passes {
			delete(s.problems, k)
		}
	}
}

// reason is the system's reason for err, without the path.
func reason(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// reportFile explains why a listed file cannot be opened, and what fixes it.
func (s *streamer) reportFile(e entry, err error) {
	st := e.st
	state := fmt.Sprintf("%s %o %d %d", reason(err), st.Mode, st.Uid, st.Gid)
	msg := fmt.Sprintf("cannot read %s (mode %04o, owner uid %d gid %d; this streamer runs as %s): %s.",
		quoteLabel(e.rel), st.Mode&0o7777, st.Uid, st.Gid, s.ident, reason(err))
	if errors.Is(err, fs.ErrPermission) {
		msg += " " + s.whyUnreadable(st, e.dir) + " " + fixUnreadable(st.Uid)
	}
	s.report(e.rel, state, msg+" Retrying every "+s.opts.Poll.String()+".")
}

// whyUnreadable says why this process may not read a file.
func (s *streamer) whyUnreadable(st, dir *syscall.Stat_t) string {
	switch {
	case st.Mode&0o044 == 0:
		return "Only its owner may read it (the app's umask is 0077, or it sets the mode itself)."
	case st.Mode&0o004 == 0 && !s.ident.inGroup(st.Gid):
		why := fmt.Sprintf("It is group-readable, but its group %d is not one of this streamer's", st.Gid)
		if dir != nil && (dir.Mode&syscall.S_ISGID == 0 || !s.ident.inGroup(dir.Gid)) {
			why += fmt.Sprintf(": its directory (mode %04o, group %d) is not owned by the pod's fsGroup with the setgid bit, so new files keep the app's group (the kubelet does that for an emptyDir, not for a hostPath)", dir.Mode&0o7777, dir.Gid)
		}
		return why + "."
	}
	return "A directory on its path may not be searchable, or a security module denies it."
}

// fixUnreadable is the fix for a file the streamer may not read.
func fixUnreadable(owner uint32) string {
	fix := "Fix: have the app write group-readable files (umask 0027 is fine): podguard gives the pod an fsGroup, so the log directory is group-owned and setgid, new files get that group, and this sidecar runs in it."
	if owner == 0 {
		return fix + " (Running the sidecar as the file's owner is not an option: the app runs as root.)"
	}
	return fix + fmt.Sprintf(" Or run this sidecar as the file's owner, uid %d: podguard does when the pod spec gives the app that runAsUser, and policies.logSidecar.runAsUser sets it for every pod.", owner)
}

// reportDir explains why a directory cannot be listed.
func (s *streamer) reportDir(rel string, st *syscall.Stat_t, err error) {
	name := rel
	if name == "" {
		name = s.opts.Dir
	}
	if st == nil {
		msg := fmt.Sprintf("cannot list %s: %s. Waiting for it: it is where the sidecar mounts the log volume (or what --dir names).", quoteLabel(name), reason(err))
		s.report(dirKey(rel), reason(err), msg)
		return
	}
	state := fmt.Sprintf("%s %o %d %d", reason(err), st.Mode, st.Uid, st.Gid)
	msg := fmt.Sprintf("cannot list directory %s (mode %04o, owner uid %d gid %d; this streamer runs as %s): %s.",
		quoteLabel(name), st.Mode&0o7777, st.Uid, st.Gid, s.ident, reason(err))
	if errors.Is(err, fs.ErrPermission) {
		msg += " Fix: this streamer needs to read and search (r-x) every directory it follows: have the app create them group-accessible (umask 0027 is fine) in the log volume, which podguard's fsGroup makes group-owned and setgid, or run this sidecar as the app's uid (podguard does when the pod spec gives the app a non-root runAsUser)."
	}
	s.report(dirKey(rel), state, msg+" Retrying every "+s.opts.Poll.String()+".")
}

// lineWriter prints whole lines, buffered: a write never ends mid-line.
type lineWriter struct {
	w   io.Writer
	buf []byte
	err error
}

const flushAt = 32 << 10

func (lw *lineWriter) line(label string, a, b []byte) {
	lw.buf = append(lw.buf, '[')
	lw.buf = append(lw.buf, label...)
	lw.buf = append(lw.buf, "] "...)
	lw.buf = append(lw.buf, a...)
	lw.buf = append(lw.buf, b...)
	lw.buf = append(lw.buf, '\n')
	if len(lw.buf) >= flushAt {
		lw.flush()
	}
}

func (lw *lineWriter) flush() error {
	if lw.err == nil && len(lw.buf) > 0 {
		if _, err := lw.w.Write(lw.buf); err != nil {
			lw.err = fmt.Errorf("writing the log lines: %w", err)
		}
	}
	lw.buf = lw.buf[:0]
	if cap(lw.buf) > 4*flushAt {
		lw.buf = nil // grown by a long line
	}
	return lw.err
}
