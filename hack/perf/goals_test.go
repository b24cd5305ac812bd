package main

import "testing"

// reviewsAt returns summaries where podguard's CPU per review is ratio
// times null's 0.1 ms on every body, at the given rate.
func reviewsAt(ratio, rate float64) []reviewSummary {
	var rs []reviewSummary
	for _, b := range bodyFiles {
		rs = append(rs,
			reviewSummary{Body: b.name, Path: b.path, Server: serverPodguard, ReviewsPerSec: rate, CPUPerReview: 0.1 * ratio},
			reviewSummary{Body: b.name, Path: b.path, Server: serverNull, ReviewsPerSec: 10000, CPUPerReview: 0.1})
	}
	return rs
}

func createsAt(pgPacedP99, pgClosedP50, pgClosedRate float64) []createSummary {
	return []createSummary{
		{Config: configNone, Mode: modeClosed, PerSec: 800, P50Ms: 50, P99Ms: 100},
		{Config: configNull, Mode: modeClosed, PerSec: 700, P50Ms: 60, P99Ms: 120},
		{Config: configPodguard, Mode: modeClosed, PerSec: pgClosedRate, P50Ms: pgClosedP50, P99Ms: 130},
		{Config: configNone, Mode: modePaced, PerSec: 100, P50Ms: 5, P99Ms: 8},
		{Config: configNull, Mode: modePaced, PerSec: 100, P50Ms: 6, P99Ms: 10},
		{Config: configPodguard, Mode: modePaced, PerSec: 100, P50Ms: 7, P99Ms: pgPacedP99},
	}
}

func statuses(goals []goal) map[string]string {
	m := map[string]string{}
	for _, g := range goals {
		m[g.Goal] = g.Status
	}
	return m
}

func TestEvaluateGoals(t *testing.T) {
	const (
		cpuMutate   = "CPU per review ≤ 1.5× null, nginx /mutate"
		cpuValidate = "CPU per review ≤ 1.3× null, Deployment /validate"
		rateMutate  = "≥ 6,000 reviews/s on one core, tomcat /mutate"
		rateValid   = "≥ 8,000 reviews/s on one core, nginx /validate"
		paced       = "paced: p99 added over null ≤ 2 ms"
		p50         = "closed loop: p50 added over null ≤ 10 ms"
		tput        = "closed loop: throughput ≥ 80% of null's"
	)
	cases := []struct {
		name    string
		reviews []reviewSummary
		creates []createSummary
		want    map[string]string
	}{
		{
			name:    "all within",
			reviews: reviewsAt(1.2, 9000),
			creates: createsAt(11.9, 69.9, 560),
			want:    map[string]string{cpuMutate: statusMet, cpuValidate: statusMet, rateMutate: statusMet, rateValid: statusMet, paced: statusMet, p50: statusMet, tput: statusMet},
		},
		{
			name:    "between the mutate and validate limits, and slow",
			reviews: reviewsAt(1.4, 7000),
			creates: createsAt(12.1, 70.1, 559),
			want:    map[string]string{cpuMutate: statusMet, cpuValidate: statusMissed, rateMutate: statusMet, rateValid: statusMissed, paced: statusMissed, p50: statusMissed, tput: statusMissed},
		},
		{
			name: "nothing measured",
			want: map[string]string{cpuMutate: statusNotMeasured, rateValid: statusNotMeasured, paced: statusNotMeasured, p50: statusNotMeasured, tput: statusNotMeasured},
		},
	}
	for _, c := range cases {
		got := statuses(evaluateGoals(c.reviews, c.creates, nil))
		for g, want := range c.want {
			if got[g] != want {
				t.Errorf("%s: %q is %q, want %q", c.name, g, got[g], want)
			}
		}
	}
}

// TestEvaluateGoalsErrors: a goal met on figures is missed when the runs
// behind it had errors.
func TestEvaluateGoalsErrors(t *testing.T) {
	rs := reviewsAt(1.0, 20000)
	rs[0].Errors = 3 // podguard, nginx /mutate
	cs := createsAt(10, 60, 700)
	cs[5].Errors = 1 // podguard paced
	got := statuses(evaluateGoals(rs, cs, nil))
	for _, g := range []string{"CPU per review ≤ 1.5× null, nginx /mutate", "≥ 6,000 reviews/s on one core, nginx /mutate", "paced: p99 added over null ≤ 2 ms"} {
		if got[g] != statusMissed {
			t.Errorf("%q is %q with errors behind it, want missed", g, got[g])
		}
	}
	if g := "closed loop: throughput ≥ 80% of null's"; got[g] != statusMet {
		t.Errorf("%q is %q, want met (no errors there)", g, got[g])
	}
}

// TestAllocationGoals parses go test -bench output as it prints it and
// holds each body to its limit: 10 KiB for /validate, 25 KiB for /mutate.
func TestAllocationGoals(t *testing.T) {
	out := []byte(`goos: linux
goarch: amd64
pkg: github.com/podguard/podguard/webhook
BenchmarkReview/nginx-mutate/podguard-2         	    5000	     59685 ns/op	  41.66 MB/s	     59685 cpu-ns/op	   11781 B/op	     130 allocs/op
BenchmarkReview/tomcat-mutate/podguard-2        	    5000	    139957 ns/op	  23.47 MB/s	    139957 cpu-ns/op	   34943 B/op	     279 allocs/op
BenchmarkReview/nginx-validate/podguard-2       	    5000	     53301 ns/op	  49.36 MB/s	     53301 cpu-ns/op	   10241 B/op	     112 allocs/op
BenchmarkReview/deployment-validate/podguard-2  	    5000	     44756 ns/op	  51.41 MB/s	     44756 cpu-ns/op	   10240 B/op	     100 allocs/op
BenchmarkReview/nginx-mutate/null-2             	    5000	     48809 ns/op	  50.95 MB/s	     48809 cpu-ns/op	    9289 B/op	      53 allocs/op
PASS
`)
	allocs, err := parseAllocBench(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(allocs) != 4 || allocs[1].Body != "tomcat-mutate" || allocs[1].BytesPerOp != 34943 || allocs[1].AllocsPerOp != 279 {
		t.Fatalf("parsed %+v", allocs)
	}
	got := statuses(evaluateGoals(nil, nil, allocs))
	for g, want := range map[string]string{
		"≤ 25 KiB allocated per review, nginx /mutate":        statusMet,
		"≤ 25 KiB allocated per review, tomcat /mutate":       statusMissed,
		"≤ 10 KiB allocated per review, nginx /validate":      statusMissed,
		"≤ 10 KiB allocated per review, Deployment /validate": statusMet,
	} {
		if got[g] != want {
			t.Errorf("%q is %q, want %q", g, got[g], want)
		}
	}
	if _, err := parseAllocBench([]byte("BenchmarkReview/nginx-mutate/podguard-2 5000 59685 ns/op\n")); err == nil {
		t.Error("a line without -benchmem figures was accepted")
	}
	if _, err := parseAllocBench([]byte("FAIL\n")); err == nil {
		t.Error("output without benchmark lines was accepted")
	}
}
