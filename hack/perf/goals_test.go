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
		got := statuses(evaluateGoals(c.reviews, c.creates))
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
	got := statuses(evaluateGoals(rs, cs))
	for _, g := range []string{"CPU per review ≤ 1.5× null, nginx /mutate", "≥ 6,000 reviews/s on one core, nginx /mutate", "paced: p99 added over null ≤ 2 ms"} {
		if got[g] != statusMissed {
			t.Errorf("%q is %q with errors behind it, want missed", g, got[g])
		}
	}
	if g := "closed loop: throughput ≥ 80% of null's"; got[g] != statusMet {
		t.Errorf("%q is %q, want met (no errors there)", g, got[g])
	}
}
