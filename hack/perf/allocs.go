package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
)

// allocResult is what BenchmarkReview (webhook/bench_test.go) measured for
// podguard's handler on one body: bytes and allocations per review.
type allocResult struct {
	Body        string  `json:"body"`
	BytesPerOp  float64 `json:"bytesPerReview"`
	AllocsPerOp float64 `json:"allocsPerReview"`
}

// The allocation goals of issue 12, in bytes per review.
const (
	maxBytesValidate = 10 << 10
	maxBytesMutate   = 25 << 10
)

// allocBench runs BenchmarkReview on podguard's handler with -benchmem.
// Allocation counts do not depend on the machine's load, so a fixed,
// short run is enough.
func allocBench(ctx context.Context, root string) ([]allocResult, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^BenchmarkReview$/.*/podguard$",
		"-benchmem", "-benchtime", "5000x", "./webhook")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go test -bench BenchmarkReview: %w: %s%s", err, out, stderr.String())
	}
	return parseAllocBench(out)
}

var benchLine = regexp.MustCompile(`^BenchmarkReview/([^/\s]+)/podguard(?:-\d+)?\s`)

// parseAllocBench reads the B/op and allocs/op of podguard's lines.
func parseAllocBench(out []byte) ([]allocResult, error) {
	var res []allocResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		r := allocResult{Body: m[1]}
		fields := strings.Fields(line)
		for i := 1; i < len(fields); i++ {
			v, err := strconv.ParseFloat(fields[i-1], 64)
			if err != nil {
				continue
			}
			switch fields[i] {
			case "B/op":
				r.BytesPerOp = v
			case "allocs/op":
				r.AllocsPerOp = v
			}
		}
		if r.BytesPerOp == 0 && r.AllocsPerOp == 0 {
			return nil, fmt.Errorf("no -benchmem figures in %q", line)
		}
		res = append(res, r)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("no BenchmarkReview podguard lines in the output:\n%s", out)
	}
	return res, sc.Err()
}
