// Package memlimit gives the Go runtime a soft memory limit below the
// container's. Without one, Go's garbage collector lets the heap grow to
// twice what is live (GOGC=100), whatever the cgroup allows, and the kernel
// kills the container once it reaches its limit. podguard's live memory is
// mostly its informer caches; the garbage of an initial list or a burst of
// reviews comes on top. With the limit set, the collector works harder as
// memory nears it instead.
package memlimit

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
)

// DefaultRatio is the share of the container's memory limit given to the
// Go runtime: the rest is for what the runtime does not count (the
// binary's text, thread stacks outside the heap, the kernel's page cache
// charged to the container).
const DefaultRatio = 0.9

// CgroupRoot is where the process's cgroup is mounted in a container.
const CgroupRoot = "/sys/fs/cgroup"

// unlimitedV1 is at or above what cgroup v1 reports for no limit (the
// largest int64 rounded down to a page).
const unlimitedV1 = 1 << 62

// ContainerLimit reads the memory limit of the cgroup mounted at root:
// cgroup v2's memory.max, else v1's memory/memory.limit_in_bytes. ok is
// false when neither file exists or neither sets a limit.
func ContainerLimit(root string) (limit int64, ok bool, err error) {
	for _, f := range []struct {
		path      string
		unlimited func(string) bool
	}{
		{"memory.max", func(s string) bool { return s == "max" }},
		{filepath.Join("memory", "memory.limit_in_bytes"), func(string) bool { return false }},
	} {
		p := filepath.Join(root, f.path)
		data, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, false, err
		}
		s := strings.TrimSpace(string(data))
		if f.unlimited(s) {
			return 0, false, nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return 0, false, fmt.Errorf("%s: %q is not a memory limit", p, s)
		}
		if n >= unlimitedV1 {
			return 0, false, nil
		}
		return n, true, nil
	}
	return 0, false, nil
}

// Apply sets the runtime's soft memory limit to ratio of the limit of the
// cgroup at root, unless GOMEMLIMIT (read with getenv) sets one already,
// ratio is 0, or there is no limit. It returns the limit in force
// afterwards (math.MaxInt64 for none) and what decided it, for the log.
func Apply(root string, ratio float64, getenv func(string) string) (int64, string, error) {
	current := debug.SetMemoryLimit(-1)
	if v := getenv("GOMEMLIMIT"); v != "" {
		return current, "GOMEMLIMIT=" + v, nil
	}
	if ratio <= 0 {
		return current, "--memory-limit-ratio=0", nil
	}
	if !(ratio <= 1) { // NaN too
		return current, "", fmt.Errorf("memory limit ratio %v is not between 0 and 1", ratio)
	}
	limit, ok, err := ContainerLimit(root)
	if err != nil {
		return current, "", err
	}
	if !ok {
		return current, "no container memory limit", nil
	}
	set := int64(math.Floor(float64(limit) * ratio))
	debug.SetMemoryLimit(set)
	return set, fmt.Sprintf("%v of the container's %d bytes", ratio, limit), nil
}
