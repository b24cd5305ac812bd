//go:build linux

package logstream

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// harness drives a streamer pass by pass over a temporary directory, so that
// a test decides exactly what the streamer sees between two passes.
type harness struct {
	t     *testing.T
	dir   string
	s     *streamer
	out   *lineChecker
	notes *lineChecker
}

func newHarness(t *testing.T, opts Options) *harness {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	opts, err := opts.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: opts.Dir, out: &lineChecker{t: t}, notes: &lineChecker{t: t}}
	h.s = newStreamer(opts, h.out, h.notes)
	t.Cleanup(h.s.closeAll)
	return h
}

func (h *harness) pass() {
	h.t.Helper()
	if err := h.s.pass(false); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) final() {
	h.t.Helper()
	if err := h.s.pass(true); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) path(name string) string { return filepath.Join(h.dir, name) }

// write appends to a file, creating it (and its directory) if needed.
func (h *harness) write(name, content string) {
	h.t.Helper()
	p := h.path(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		h.t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		h.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(content); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) rename(from, to string) {
	h.t.Helper()
	if err := os.Rename(h.path(from), h.path(to)); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) remove(name string) {
	h.t.Helper()
	if err := os.Remove(h.path(name)); err != nil {
		h.t.Fatal(err)
	}
}

// copyTruncate does what logrotate's copytruncate does: copy, then truncate
// the original in place.
func (h *harness) copyTruncate(name, copyName string) {
	h.t.Helper()
	h.copyFile(name, copyName)
	if err := os.Truncate(h.path(name), 0); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) copyFile(from, to string) {
	h.t.Helper()
	b, err := os.ReadFile(h.path(from))
	if err != nil {
		h.t.Fatal(err)
	}
	if err := os.WriteFile(h.path(to), b, 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) truncate(name string) {
	h.t.Helper()
	if err := os.Truncate(h.path(name), 0); err != nil {
		h.t.Fatal(err)
	}
}

// wantOut checks everything printed so far: exactly these lines, those of
// each label in this order. (The order of files found in the same pass
// depends on their modification times, which the kernel keeps at the clock
// tick.)
func (h *harness) wantOut(want ...string) {
	h.t.Helper()
	got := h.out.lines()
	if !slices.Equal(byLabel(got), byLabel(want)) {
		h.t.Errorf("printed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// byLabel orders lines by their label, keeping the order of each label's.
func byLabel(lines []string) []string {
	lines = slices.Clone(lines)
	slices.SortStableFunc(lines, func(a, b string) int {
		la, _, _ := strings.Cut(a, "] ")
		lb, _, _ := strings.Cut(b, "] ")
		return strings.Compare(la, lb)
	})
	return lines
}

// wantNotes checks the notes written so far besides the start-up one: one
// per substring, in order, each containing it.
func (h *harness) wantNotes(want ...string) {
	h.t.Helper()
	got := h.notes.lines()
	if len(got) != len(want) {
		h.t.Errorf("notes:\n%s\nwant %d notes containing %q", strings.Join(got, "\n"), len(want), want)
		return
	}
	for i, w := range want {
		if !strings.Contains(got[i], w) {
			h.t.Errorf("note %d = %q, want it to contain %q", i, got[i], w)
		}
	}
}

// lineChecker collects output and fails the test on a write that does not
// end a line: lines must never be interleaved with other writers'.
type lineChecker struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (c *lineChecker) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(p) > 0 && p[len(p)-1] != '\n' {
		c.t.Errorf("a write does not end a line: %q", p)
	}
	return c.b.Write(p)
}

func (c *lineChecker) lines() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := strings.TrimSuffix(c.b.String(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func (c *lineChecker) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

func TestStreamsAppendsAndNewFilesOnce(t *testing.T) {
	h := newHarness(t, Options{})
	h.pass()
	h.write("a.log", "a1\na2\n")
	h.pass()
	h.pass()
	h.write("a.log", "a3\n")
	h.write("b.log", "b1\n")
	h.write("sub/c.log", "c1\n")
	h.write(".hidden.log", "h1\n")
	h.pass()
	h.write("b.log", "b2\n")
	h.final()
	h.wantOut("[a.log] a1", "[a.log] a2", "[a.log] a3", "[.hidden.log] h1", "[b.log] b1", "[sub/c.log] c1", "[b.log] b2")
	h.wantNotes()
}

func TestReadsFilesPresentAtStartFromTheBeginning(t *testing.T) {
	h := newHarness(t, Options{})
	h.write("catalina.2024-01-01.log", "old1\nold2\n")
	h.write("catalina.2024-01-02.log", "new1\n")
	h.pass()
	h.final()
	h.wantOut("[catalina.2024-01-01.log] old1", "[catalina.2024-01-01.log] old2", "[catalina.2024-01-02.log] new1")
}

// The app keeps writing to its open file after the rename, as an app does
// until it reopens its log, and the rotations shift older files up.
func TestRenameRotationRepeatedPrintsEachLineOnce(t *testing.T) {
	for _, passBetween := range []bool{true, false} {
		t.Run(fmt.Sprintf("a pass between rename and reopen: %v", passBetween), func(t *testing.T) {
			h := newHarness(t, Options{})
			h.pass()
			var want []string
			app, err := os.OpenFile(h.path("catalina.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
			if err != nil {
				t.Fatal(err)
			}
			const rotations = 6
			for gen := 0; gen <= rotations; gen++ {
				for i := range 3 {
					fmt.Fprintf(app, "gen%d line%d\n", gen, i)
					want = append(want, fmt.Sprintf("[catalina.log] gen%d line%d", gen, i))
				}
				h.pass()
				if gen == rotations {
					break
				}
				for k := gen; k >= 1; k-- {
					h.rename(fmt.Sprintf("catalina.log.%d", k), fmt.Sprintf("catalina.log.%d", k+1))
				}
				h.rename("catalina.log", "catalina.log.1")
				if passBetween {
					h.pass()
				}
				fmt.Fprintf(app, "gen%d after rename\n", gen)
				want = append(want, fmt.Sprintf("[catalina.log] gen%d after rename", gen))
				app.Close()
				if app, err = os.OpenFile(h.path("catalina.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640); err != nil {
					t.Fatal(err)
				}
			}
			app.Close()
			h.final()
			h.wantOut(want...)
			h.wantNotes()
		})
	}
}

func TestCopytruncatePrintsEachLineOnce(t *testing.T) {
	long := strings.Repeat("x", 300) // a few lines make the file longer than headMax
	tests := []struct {
		name string
		run  func(h *harness)
		want []string
	}{{
		name: "copy seen before the truncation",
		run: func(h *harness) {
			h.write("catalina.log", "A1\nA2\n")
			h.pass()
			h.write("catalina.log", "A3\n")
			h.copyFile("catalina.log", "catalina.log.1")
			h.pass()
			h.truncate("catalina.log")
			h.write("catalina.log", "B1\n")
			h.pass()
		},
		want: []string{"[catalina.log] A1", "[catalina.log] A2", "[catalina.log] A3", "[catalina.log] B1"},
	}, {
		name: "copy, truncation and new lines between two passes",
		run: func(h *harness) {
			h.write("catalina.log", "A1\nA2\n")
			h.pass()
			h.write("catalina.log", "A3\nA4\n")
			h.copyTruncate("catalina.log", "catalina.log.1")
			h.write("catalina.log", "B1\n")
			h.pass()
		},
		want: []string{"[catalina.log] A1", "[catalina.log] A2", "[catalina.log] A3", "[catalina.log] A4", "[catalina.log] B1"},
	}, {
		name: "the truncated file is rewritten past the old offset before the next pass",
		run: func(h *harness) {
			h.write("catalina.log", "A1\n")
			h.pass()
			h.write("catalina.log", "A2\n")
			h.copyTruncate("catalina.log", "catalina.log.1")
			h.write("catalina.log", "B1 a longer line than the old file\nB2\n")
			h.pass()
		},
		want: []string{"[catalina.log] A1", "[catalina.log] A2", "[catalina.log] B1 a longer line than the old file", "[catalina.log] B2"},
	}, {
		name: "files longer than the recorded head",
		run: func(h *harness) {
			h.write("catalina.log", "A1 "+long+"\nA2 "+long+"\nA3 "+long+"\nA4 "+long+"\n")
			h.pass()
			h.write("catalina.log", "A5\n")
			h.copyTruncate("catalina.log", "catalina.log.1")
			h.write("catalina.log", "B1 "+long+"\nB2 "+long+"\nB3 "+long+"\nB4 "+long+"\nB5\n")
			h.pass()
		},
		want: []string{
			"[catalina.log] A1 " + long, "[catalina.log] A2 " + long, "[catalina.log] A3 " + long, "[catalina.log] A4 " + long, "[catalina.log] A5",
			"[catalina.log] B1 " + long, "[catalina.log] B2 " + long, "[catalina.log] B3 " + long, "[catalina.log] B4 " + long, "[catalina.log] B5",
		},
	}, {
		name: "a partial line at the copy is printed whole, once",
		run: func(h *harness) {
			h.write("catalina.log", "A1\nA2-begin")
			h.pass()
			h.write("catalina.log", "-end\n")
			h.copyTruncate("catalina.log", "catalina.log.1")
			h.write("catalina.log", "B1\n")
			h.pass()
		},
		want: []string{"[catalina.log] A1", "[catalina.log] A2-begin-end", "[catalina.log] B1"},
	}, {
		name: "a copy still being written",
		run: func(h *harness) {
			content := "A1 " + long + "\nA2 " + long + "\nA3 " + long + "\nA4 " + long + "\n"
			h.write("catalina.log", content)
			h.pass()
			h.write("catalina.log", "A5\n")
			h.write("catalina.log.1", content[:100]) // shorter than the recorded head
			h.pass()
			h.pass()
			h.write("catalina.log.1", content[100:700])
			h.pass()
			h.write("catalina.log.1", content[700:]+"A5\n")
			h.truncate("catalina.log")
			h.write("catalina.log", "B1\n")
			h.pass()
		},
		want: []string{"[catalina.log] A1 " + long, "[catalina.log] A2 " + long, "[catalina.log] A3 " + long, "[catalina.log] A4 " + long, "[catalina.log] A5", "[catalina.log] B1"},
	}, {
		name: "copy made before the original was read",
		run: func(h *harness) {
			h.write("catalina.log", "A1\nA2\n")
			h.copyTruncate("catalina.log", "catalina.log.1")
			h.write("catalina.log", "B1\n")
			h.pass()
		},
		want: []string{"[catalina.log] B1", "[catalina.log.1] A1", "[catalina.log.1] A2"},
	}, {
		name: "copy and original both new, not yet truncated",
		run: func(h *harness) {
			h.write("catalina.log", "A1\nA2\n")
			h.copyFile("catalina.log", "catalina.log.1")
			h.pass()
			h.write("catalina.log", "A3\n")
			h.pass()
			h.truncate("catalina.log")
			h.write("catalina.log", "B1\n")
			h.pass()
		},
		want: []string{"[catalina.log] A1", "[catalina.log] A2", "[catalina.log] A3", "[catalina.log] B1"},
	}, {
		name: "repeated copytruncate with shifted copies",
		run: func(h *harness) {
			for gen := range 5 {
				h.write("catalina.log", fmt.Sprintf("gen%d a\ngen%d b\n", gen, gen))
				h.pass()
				h.write("catalina.log", fmt.Sprintf("gen%d c\n", gen))
				for k := gen; k >= 1; k-- {
					h.rename(fmt.Sprintf("catalina.log.%d", k), fmt.Sprintf("catalina.log.%d", k+1))
				}
				h.copyTruncate("catalina.log", "catalina.log.1")
				if gen%2 == 0 {
					h.pass()
				}
			}
			h.pass()
		},
		want: func() []string {
			var w []string
			for gen := range 5 {
				w = append(w, fmt.Sprintf("[catalina.log] gen%d a", gen), fmt.Sprintf("[catalina.log] gen%d b", gen), fmt.Sprintf("[catalina.log] gen%d c", gen))
			}
			return w
		}(),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			tt.run(h)
			h.final()
			h.wantOut(tt.want...)
			h.wantNotes()
		})
	}
}

func TestTruncatedFileIsReadAgain(t *testing.T) {
	header := strings.Repeat("banner line\n", 100) // longer than headMax
	tests := []struct {
		name string
		run  func(h *harness)
		want []string
	}{{
		name: "shorter than before",
		run: func(h *harness) {
			h.write("app.log", "A1\nA2\nA3\n")
			h.pass()
			h.truncate("app.log")
			h.write("app.log", "B1\n")
			h.pass()
		},
		want: []string{"[app.log] A1", "[app.log] A2", "[app.log] A3", "[app.log] B1"},
	}, {
		name: "rewritten past the old offset",
		run: func(h *harness) {
			h.write("app.log", "A1\n")
			h.pass()
			h.truncate("app.log")
			h.write("app.log", "B1\nB2\nB3\n")
			h.pass()
		},
		want: []string{"[app.log] A1", "[app.log] B1", "[app.log] B2", "[app.log] B3"},
	}, {
		name: "rewritten with the same first bytes",
		run: func(h *harness) {
			h.write("app.log", header+"A1\n")
			h.pass()
			h.truncate("app.log")
			h.write("app.log", header+"B1 longer\n")
			h.pass()
		},
		want: slices.Concat(
			slices.Repeat([]string{"[app.log] banner line"}, 100), []string{"[app.log] A1"},
			slices.Repeat([]string{"[app.log] banner line"}, 100), []string{"[app.log] B1 longer"}),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			tt.run(h)
			h.final()
			h.wantOut(tt.want...)
		})
	}
}

func TestPartialLines(t *testing.T) {
	t.Run("held until the newline, flushed at the end", func(t *testing.T) {
		h := newHarness(t, Options{})
		h.write("app.log", "par")
		h.pass()
		h.wantOut()
		h.write("app.log", "tial\nlast without newline")
		h.pass()
		h.wantOut("[app.log] partial")
		h.final()
		h.wantOut("[app.log] partial", "[app.log] last without newline")
	})
	t.Run("a long line is split at MaxLine", func(t *testing.T) {
		h := newHarness(t, Options{MaxLine: 8})
		h.write("app.log", "0123456789abcdefXYZ\n")
		h.write("app.log", "01234")
		h.pass()
		h.write("app.log", "567\n") // exactly MaxLine, in two reads: one line
		h.pass()
		h.final()
		h.wantOut("[app.log] 01234567", "[app.log] 89abcdef", "[app.log] XYZ", "[app.log] 01234567")
	})
}

func TestDeletedFileIsDrainedAndClosed(t *testing.T) {
	h := newHarness(t, Options{})
	h.write("app.log.1", "A1\n")
	h.pass()
	h.write("app.log.1", "A2\nA3 partial")
	h.remove("app.log.1")
	h.pass()
	h.wantOut("[app.log.1] A1", "[app.log.1] A2", "[app.log.1] A3 partial")
	if len(h.s.files) != 0 {
		t.Errorf("%d files still open after their deletion", len(h.s.files))
	}
}

func TestCompressedFilesAreSkippedWithOneNote(t *testing.T) {
	h := newHarness(t, Options{})
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, "old line\n")
	zw.Close()
	h.write("catalina.log.2.gz", gz.String())
	h.write("catalina.log.3.zst", "whatever")
	h.write("compressed-without-suffix", gz.String())
	h.write("catalina.log", "line\n")
	for range 3 {
		h.pass()
	}
	h.final()
	h.wantOut("[catalina.log] line")
	h.wantNotes("skipping catalina.log.2.gz: compressed", "skipping catalina.log.3.zst: compressed", "skipping compressed-without-suffix: compressed")
}

func TestSymlinksAreNotFollowedAndDepthIsBounded(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("not printed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Options{MaxDepth: 1})
	h.write("sub/a.log", "a\n")
	h.write("sub/deeper/b.log", "not followed\n")
	for _, link := range []string{"link-to-file", "link-to-dir"} {
		target := filepath.Join(outside, "secret")
		if link == "link-to-dir" {
			target = outside
		}
		if err := os.Symlink(target, h.path(link)); err != nil {
			t.Fatal(err)
		}
	}
	h.pass()
	h.final()
	h.wantOut("[sub/a.log] a")
}

// As root, a file's mode does not stop reading it: the permission error is
// injected here, and TestStreamLogsBinary (cmd/podguard) shows the real one.
func TestUnreadableFileIsReportedOncePerStateAndRetried(t *testing.T) {
	h := newHarness(t, Options{})
	h.write("catalina.log", "line\n")
	if err := os.Chmod(h.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(h.path("catalina.log"), 0o640); err != nil {
		t.Fatal(err)
	}
	denied := true
	h.s.open = func(dirFd int, name, abs string) (*os.File, error) {
		if denied {
			return nil, &fs.PathError{Op: "open", Path: abs, Err: syscall.EACCES}
		}
		return openAt(dirFd, name, abs)
	}
	h.s.ident = identity{uid: 65534, gid: 65534, groups: []int{2000}}
	h.pass()
	h.pass()
	h.pass()
	if err := os.Chmod(h.path("catalina.log"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.pass()
	h.pass()
	denied = false
	h.pass()
	h.final()
	h.wantOut("[catalina.log] line")
	h.wantNotes(
		"cannot read catalina.log (mode 0640, owner uid 0 gid 0; this streamer runs as uid 65534 gid 65534 with groups [2000]): permission denied. "+
			"It is group-readable, but its group 0 is not one of this streamer's: its directory (mode 0755, group 0) is not owned by the pod's fsGroup with the setgid bit, so new files keep the app's group (the kubelet does that for an emptyDir, not for a hostPath). "+
			"Fix: have the app write group-readable files (umask 0027 is fine): podguard gives the pod an fsGroup, so the log directory is group-owned and setgid, new files get that group, and this sidecar runs in it. "+
			"(Running the sidecar as the file's owner is not an option: the app runs as root.) Retrying every 500ms.",
		"cannot read catalina.log (mode 0600, owner uid 0 gid 0; this streamer runs as uid 65534 gid 65534 with groups [2000]): permission denied. Only its owner may read it",
		"can read catalina.log now",
	)
}

func TestMissingDirectoryIsWaitedFor(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	h := newHarness(t, Options{Dir: dir})
	h.pass()
	h.pass()
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	h.write("app.log", "line\n")
	h.pass()
	h.final()
	h.wantOut("[app.log] line")
	h.wantNotes("cannot list "+dir+": no such file or directory", "can list directory "+dir+" now")
}

func TestMaxFilesIsReportedAndLaterLifted(t *testing.T) {
	h := newHarness(t, Options{MaxFiles: 2})
	h.write("a.log", "a\n")
	h.write("b.log", "b\n")
	h.write("c.log", "c\n")
	h.pass()
	h.pass()
	h.remove("a.log")
	h.pass()
	h.pass()
	h.final()
	h.wantOut("[a.log] a", "[b.log] b", "[c.log] c")
	h.wantNotes("following 2 files, the limit (--max-files): c.log and any other new file are not followed")
}

// TestRunDrainsAtTheEnd runs the streamer as the sidecar does: the app's
// last lines, written just before the stop, are printed.
func TestRunDrainsAtTheEnd(t *testing.T) {
	dir := t.TempDir()
	out, notes := &lineChecker{t: t}, &lineChecker{t: t}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, Options{Dir: dir, Poll: 5 * time.Millisecond}, out, notes) }()
	write := func(s string) {
		f, err := os.OpenFile(filepath.Join(dir, "app.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s)
		f.Close()
	}
	write("first\n")
	waitFor(t, func() bool { return strings.Contains(out.String(), "first") })
	write("last\nno newline")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "[app.log] first\n[app.log] last\n[app.log] no newline\n"; got != want {
		t.Errorf("printed %q, want %q", got, want)
	}
	if got := notes.lines(); len(got) != 1 || !strings.Contains(got[0], "following the files in "+dir) {
		t.Errorf("notes: %q, want the start-up note only", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRandomRotationsPrintEachLineOnce interleaves appends, rename rotations
// (with the app writing to its old file before it reopens), copytruncate
// rotations, truncate-and-rewrite and other files with passes at random
// points: every line written is printed exactly once.
func TestRandomRotationsPrintEachLineOnce(t *testing.T) {
	for seed := range 40 {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(seed), 7))
			h := newHarness(t, Options{})
			openApp := func() *os.File {
				f, err := os.OpenFile(h.path("catalina.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
				if err != nil {
					t.Fatal(err)
				}
				return f
			}
			app := openApp()
			defer func() { app.Close() }()
			var want []string
			seq := 0
			writeLines := func(w io.Writer, stream string, n int) {
				for range n {
					seq++
					line := fmt.Sprintf("%s seq%04d", stream, seq)
					if rng.IntN(4) == 0 {
						line += " " + strings.Repeat("p", rng.IntN(700))
					}
					fmt.Fprintln(w, line)
					want = append(want, line)
				}
			}
			rotated := 0
			shift := func() {
				for k := rotated; k >= 1; k-- {
					h.rename(fmt.Sprintf("catalina.log.%d", k), fmt.Sprintf("catalina.log.%d", k+1))
				}
				rotated++
			}
			var ops []string
			lastWasPass := false
			for range 80 {
				op := rng.IntN(10)
				switch {
				case op < 4:
					ops = append(ops, "append")
					writeLines(app, "main", 1+rng.IntN(5))
				case op == 4:
					ops = append(ops, "rename")
					shift()
					h.rename("catalina.log", "catalina.log.1")
					writeLines(app, "main", rng.IntN(3)) // before the app reopens its log
					app.Close()
					app = openApp()
				case op == 5:
					ops = append(ops, "copytruncate")
					shift()
					h.copyTruncate("catalina.log", "catalina.log.1")
				case op == 6 && lastWasPass:
					ops = append(ops, "truncate")
					h.truncate("catalina.log")
				case op == 7:
					ops = append(ops, "other")
					name := fmt.Sprintf("other-%d.log", rng.IntN(3))
					f, err := os.OpenFile(h.path(name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
					if err != nil {
						t.Fatal(err)
					}
					writeLines(f, name, 1+rng.IntN(3))
					f.Close()
				default:
					ops = append(ops, "pass")
					h.pass()
				}
				lastWasPass = ops[len(ops)-1] == "pass"
			}
			h.final()
			checkOnceInOrder(t, h.out.lines(), want, ops)
			h.wantNotes()
		})
	}
}

// checkOnceInOrder checks that printed holds each wanted line once and
// nothing else, and the lines of each stream under one label in the order
// they were written. (Lines of files found in the same pass may come out of
// order: files are ordered by modification time, which the kernel keeps at
// the clock tick.)
func checkOnceInOrder(t *testing.T, printed, want []string, context any) {
	t.Helper()
	count := map[string]int{}
	for _, w := range want {
		count[w]++
	}
	lastSeq := map[string]string{}
	for _, p := range printed {
		_, content, ok := strings.Cut(p, "] ")
		if !ok || !strings.HasPrefix(p, "[") {
			t.Errorf("printed %q, which is not a prefixed line", p)
			continue
		}
		switch count[content] {
		case 1:
			count[content] = 0
		case 0:
			t.Errorf("printed %q, which was not written or was printed before (%v)", p, context)
		}
		label, _, _ := strings.Cut(p, "] ")
		stream, rest, _ := strings.Cut(content, " ")
		seq, _, _ := strings.Cut(rest, " ")
		key := label + " " + stream
		if seq < lastSeq[key] {
			t.Errorf("printed %q after %s of the same stream and file (%v)", p, lastSeq[key], context)
		}
		lastSeq[key] = seq
	}
	for line, n := range count {
		if n > 0 {
			t.Errorf("did not print %q (%v)", line, context)
		}
	}
}

func TestFileOutOfReachForAWhileIsNotReadAgain(t *testing.T) {
	for _, passesAway := range []int{1, missingPasses + 2} {
		t.Run(fmt.Sprintf("%d passes away", passesAway), func(t *testing.T) {
			h := newHarness(t, Options{MaxDepth: -1})
			h.write("app.log", "A1\nA2 partial")
			h.pass()
			if err := os.Mkdir(h.path("deep"), 0o755); err != nil {
				t.Fatal(err)
			}
			h.rename("app.log", "deep/app.log") // out of reach: MaxDepth -1 lists Dir's own files only
			for range passesAway {
				h.pass()
			}
			h.rename("deep/app.log", "app.log")
			h.write("app.log", " end\nA3\n")
			h.pass()
			h.final()
			h.wantOut("[app.log] A1", "[app.log] A2 partial end", "[app.log] A3")
		})
	}
}

// Of two new files with the same bytes, the one found later is taken for the
// copy; if it is the one that grows, it is read on from there.
func TestIdenticalNewFilesPrintOnceWhicheverGrows(t *testing.T) {
	h := newHarness(t, Options{})
	h.write("catalina.log", "A1\nA2\n")
	h.copyFile("catalina.log", "catalina.log.1")
	h.pass()
	h.write("catalina.log.1", "C1\n")
	h.pass()
	h.pass()
	h.write("catalina.log", "B1\n")
	h.final()
	out := h.out.lines()
	checkOnceInOrder(t, slices.Clone(out), []string{"A1", "A2", "C1", "B1"}, out)
}
