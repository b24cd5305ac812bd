//go:build linux

package logstream

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// csvLines is a CSV file's header and n rows.
func csvLines(n int) string {
	var b strings.Builder
	b.WriteString("time,level,msg\n")
	for i := range n {
		fmt.Fprintf(&b, "1,INFO,a line %d\n", i)
	}
	return b.String()
}

// A new file that holds only the header of a followed file, and stays quiet
// long enough to be taken for a copy of it, is read as soon as its bytes
// differ from that file's; and if it outgrows that file, from where they
// differ, not from where that file was read up to.
func TestNewFileSharingOnlyAHeaderIsReadWhenItDiffers(t *testing.T) {
	for _, outgrow := range []bool{false, true} {
		t.Run(fmt.Sprintf("outgrow=%v", outgrow), func(t *testing.T) {
			h := newHarness(t, Options{})
			h.write("a.csv", csvLines(100))
			h.pass()
			h.write("b.csv", "time,level,msg\n")
			for range undecidedPasses + 2 {
				h.pass()
			}
			h.write("b.csv", "2,ERROR,b-only line\n")
			h.pass()
			want := []string{"[b.csv] 2,ERROR,b-only line"}
			if outgrow {
				for i := range 200 {
					line := fmt.Sprintf("3,WARN,b line %d", i)
					h.write("b.csv", line+"\n")
					want = append(want, "[b.csv] "+line)
				}
				h.pass()
			}
			h.final()
			var got []string
			for _, l := range h.out.lines() {
				if strings.HasPrefix(l, "[b.csv] ") {
					got = append(got, l)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("b.csv printed:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if n := len(h.out.lines()) - len(got); n != 101 {
				t.Errorf("a.csv printed %d lines, want 101", n)
			}
		})
	}
}

// The same with a truncated file's record: a new file that holds only its
// header does not continue its stream once its bytes differ.
func TestNewFileSharingOnlyAHeaderWithATruncatedFileIsRead(t *testing.T) {
	h := newHarness(t, Options{})
	h.write("a.csv", csvLines(100))
	h.pass()
	h.truncate("a.csv")
	h.pass()
	h.write("b.csv", "time,level,msg\n")
	for range undecidedPasses + 2 {
		h.pass()
	}
	h.write("b.csv", "2,ERROR,b-only line\n")
	h.pass()
	h.write("b.csv", "2,ERROR,b second line\n")
	h.final()
	var got []string
	for _, l := range h.out.lines() {
		if !strings.HasPrefix(l, "[a.csv] ") {
			got = append(got, l)
		}
	}
	want := []string{"[b.csv] 2,ERROR,b-only line", "[b.csv] 2,ERROR,b second line"}
	if !slices.Equal(got, want) {
		t.Errorf("printed besides a.csv:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n := len(h.out.lines()) - len(got); n != 101 {
		t.Errorf("a.csv printed %d lines, want 101", n)
	}
}

// Two files linked as copies that both grow, differently, in one pass: each
// prints its own lines.
func TestLinkedCopyThatDivergesIsRead(t *testing.T) {
	h := newHarness(t, Options{})
	h.write("catalina.log", "A1\nA2\n")
	h.copyFile("catalina.log", "catalina.log.1")
	h.pass()
	h.write("catalina.log", "B1\n")
	h.write("catalina.log.1", "C1\n")
	h.pass()
	h.final()
	out := h.out.lines()
	for _, w := range []string{"A1", "A2", "B1", "C1"} {
		n := 0
		for _, l := range out {
			if strings.HasSuffix(l, "] "+w) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s printed %d times:\n%s", w, n, strings.Join(out, "\n"))
		}
	}
}

// A file deleted between the listing and its opening is not reported.
func TestFileDeletedBeforeItsOpeningIsNotReported(t *testing.T) {
	h := newHarness(t, Options{})
	h.s.open = func(dirFd int, name, abs string) (*os.File, error) {
		os.Remove(abs)
		return openAt(dirFd, name, abs)
	}
	h.write("app.log.1", "A1\n")
	h.pass()
	h.wantNotes()
}

// A subdirectory swapped for a symlink between the listing of its parent and
// its own listing is not followed.
func TestDirectorySwappedForASymlinkIsNotFollowed(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(outside+"/secret", []byte("not printed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, Options{})
	h.write("a.log", "a\n")
	h.write("sub/b.log", "b\n")
	swapped := false
	h.s.open = func(dirFd int, name, abs string) (*os.File, error) {
		if name == "a.log" && !swapped { // after the listing of Dir, before sub's
			swapped = true
			h.rename("sub", "sub.old")
			if err := os.Symlink(outside, h.path("sub")); err != nil {
				t.Fatal(err)
			}
		}
		return openAt(dirFd, name, abs)
	}
	h.pass()
	if !swapped {
		t.Fatal("a.log was not opened")
	}
	h.final()
	h.wantOut("[a.log] a", "[sub.old/b.log] b")
	h.wantNotes()
}
