package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// TestTheLoggerDoesNotSample logs the same message far more often than
// controller-runtime's production sampler lets through in a second (100,
// then 1 in 100), and counts the lines.
func TestTheLoggerDoesNotSample(t *testing.T) {
	for _, args := range [][]string{nil, {"--zap-log-level=debug"}, {"--zap-encoder=console"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out bytes.Buffer
			o := zap.Options{StacktraceLevel: zapcore.DPanicLevel, DestWriter: &out}
			fs := flag.NewFlagSet("serve", flag.ContinueOnError)
			o.BindFlags(fs)
			if err := fs.Parse(args); err != nil {
				t.Fatal(err)
			}
			log := newLogger(&o)
			const n = 1000
			for i := range n {
				log.Info("admission", "uid", i, "decision", "allowed")
			}
			log.V(1).Info("debug line")
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			want := n
			if len(args) > 0 && args[0] == "--zap-log-level=debug" {
				want++
			}
			if len(lines) != want {
				t.Fatalf("%d lines logged, want %d", len(lines), want)
			}
			if len(args) == 0 {
				var entry map[string]any
				if err := json.Unmarshal([]byte(lines[n-1]), &entry); err != nil {
					t.Fatalf("not the production JSON encoder: %v: %s", err, lines[n-1])
				}
				if entry["msg"] != "admission" || entry["uid"] != float64(n-1) || entry["level"] != "info" {
					t.Errorf("last line %s", lines[n-1])
				}
			}
		})
	}
}

// TestServeRefusesProfilesOffLoopback: pprof has no authentication.
func TestServeRefusesProfilesOffLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "10.0.0.1:6060"} {
		var stderr bytes.Buffer
		code := run([]string{"serve", "--pprof-addr", addr}, strings.NewReader(""), &bytes.Buffer{}, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "--pprof-addr") {
			t.Errorf("--pprof-addr %s: exit %d, %q", addr, code, stderr.String())
		}
	}
}

// TestServeRefusesAMemoryRatioOutOfRange: the ratio is a share of the
// container's limit.
func TestServeRefusesAMemoryRatioOutOfRange(t *testing.T) {
	for _, ratio := range []string{"-0.1", "1.5", "nine", "NaN"} {
		var stderr bytes.Buffer
		code := run([]string{"serve", "--memory-limit-ratio", ratio}, strings.NewReader(""), &bytes.Buffer{}, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), "memory-limit-ratio") {
			t.Errorf("--memory-limit-ratio %s: exit %d, %q", ratio, code, stderr.String())
		}
	}
}
