package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// percentile returns the p-th percentile (0 < p <= 100) of sorted, by the
// nearest-rank method: the smallest value with at least p% of the values
// at or below it. It returns 0 for no values.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	if rank > len(sorted) {
		rank = len(sorted)
	}
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// median returns the median of xs (the mean of the two middle values for
// an even count), or NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// procCPU returns the CPU time, in nanoseconds, that process pid's threads
// have run: the sum of the first field of /proc/<pid>/task/*/schedstat.
// Threads that exited are not counted, so the figure is only good for
// deltas over windows in which the process keeps its threads, as a Go
// server does.
func procCPU(pid int) (int64, error) {
	return procCPUIn("/proc", pid)
}

func procCPUIn(procRoot string, pid int) (int64, error) {
	tasks, err := filepath.Glob(filepath.Join(procRoot, strconv.Itoa(pid), "task", "*", "schedstat"))
	if err != nil {
		return 0, err
	}
	if len(tasks) == 0 {
		return 0, fmt.Errorf("no threads of process %d in %s", pid, procRoot)
	}
	var total int64
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			if os.IsNotExist(err) {
				continue // a thread that just exited
			}
			return 0, err
		}
		ns, err := parseSchedstat(string(data))
		if err != nil {
			return 0, fmt.Errorf("%s: %w", t, err)
		}
		total += ns
	}
	return total, nil
}

// parseSchedstat returns the first field of a schedstat line: the time
// spent on the CPU, in nanoseconds.
func parseSchedstat(s string) (int64, error) {
	fields := strings.Fields(s)
	if len(fields) != 3 {
		return 0, fmt.Errorf("schedstat %q: want 3 fields", strings.TrimSpace(s))
	}
	return strconv.ParseInt(fields[0], 10, 64)
}
