package main

import (
	"fmt"
	"math"
	"strings"
)

// goal is one goal of issue 12, evaluated on measured figures.
type goal struct {
	Goal     string `json:"goal"`
	Status   string `json:"status"` // met, missed, or not measured
	Measured string `json:"measured"`
}

const (
	statusMet         = "met"
	statusMissed      = "missed"
	statusNotMeasured = "not measured"
)

// The targets of issue 12.
const (
	cpuRatioValidate   = 1.3
	cpuRatioMutate     = 1.5
	minRateValidate    = 8000
	minRateMutate      = 6000
	maxPacedP99Added   = 2.0  // ms over null
	maxClosedP50Added  = 10.0 // ms over null
	minClosedRateRatio = 0.8  // of null's
)

func findReview(rs []reviewSummary, body, server string) (reviewSummary, bool) {
	for _, r := range rs {
		if r.Body == body && r.Server == server {
			return r, true
		}
	}
	return reviewSummary{}, false
}

func findCreate(cs []createSummary, config, mode string) (createSummary, bool) {
	for _, c := range cs {
		if c.Config == config && c.Mode == mode {
			return c, true
		}
	}
	return createSummary{}, false
}

func verdict(ok bool) string {
	if ok {
		return statusMet
	}
	return statusMissed
}

// errorNote says how many errors the runs behind a figure had; a goal with
// errors behind it is missed, whatever the figure.
func errorNote(n int64) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("; %d errors", n)
}

// evaluateGoals holds the summaries to the goals of issue 12. A goal whose
// figures are missing is "not measured"; one whose runs had errors is
// missed.
func evaluateGoals(reviews []reviewSummary, creates []createSummary, allocs []allocResult) []goal {
	var goals []goal
	for _, b := range bodyFiles {
		limit, minRate := cpuRatioValidate, float64(minRateValidate)
		if b.path == "/mutate" {
			limit, minRate = cpuRatioMutate, minRateMutate
		}
		label := bodyLabel(b.name, b.path)
		cpuGoal := goal{Goal: fmt.Sprintf("CPU per review ≤ %.1f× null, %s", limit, label), Status: statusNotMeasured}
		rateGoal := goal{Goal: fmt.Sprintf("≥ %s reviews/s on one core, %s", thousands(minRate), label), Status: statusNotMeasured}
		pg, okP := findReview(reviews, b.name, serverPodguard)
		null, okN := findReview(reviews, b.name, serverNull)
		if okP && okN && null.CPUPerReview > 0 {
			ratio := pg.CPUPerReview / null.CPUPerReview
			errs := pg.Errors + null.Errors
			cpuGoal.Status = verdict(ratio <= limit && errs == 0)
			cpuGoal.Measured = fmt.Sprintf("%.3f / %.3f ms = %.2f×%s", pg.CPUPerReview, null.CPUPerReview, ratio, errorNote(errs))
		}
		if okP {
			rateGoal.Status = verdict(pg.ReviewsPerSec >= minRate && pg.Errors == 0)
			rateGoal.Measured = fmt.Sprintf("%s reviews/s%s", thousands(pg.ReviewsPerSec), errorNote(pg.Errors))
		}
		goals = append(goals, cpuGoal, rateGoal)
	}

	pacedGoal := goal{Goal: fmt.Sprintf("paced: p99 added over null ≤ %g ms", maxPacedP99Added), Status: statusNotMeasured}
	if pg, ok := findCreate(creates, configPodguard, modePaced); ok {
		if null, ok := findCreate(creates, configNull, modePaced); ok {
			added := pg.P99Ms - null.P99Ms
			errs := int64(pg.Errors + null.Errors)
			pacedGoal.Status = verdict(added <= maxPacedP99Added && errs == 0)
			pacedGoal.Measured = fmt.Sprintf("%.1f − %.1f = %+.1f ms%s", pg.P99Ms, null.P99Ms, added, errorNote(errs))
		}
	}
	p50Goal := goal{Goal: fmt.Sprintf("closed loop: p50 added over null ≤ %g ms", maxClosedP50Added), Status: statusNotMeasured}
	rateGoal := goal{Goal: fmt.Sprintf("closed loop: throughput ≥ %.0f%% of null's", minClosedRateRatio*100), Status: statusNotMeasured}
	if pg, ok := findCreate(creates, configPodguard, modeClosed); ok {
		if null, ok := findCreate(creates, configNull, modeClosed); ok {
			errs := int64(pg.Errors + null.Errors)
			added := pg.P50Ms - null.P50Ms
			p50Goal.Status = verdict(added <= maxClosedP50Added && errs == 0)
			p50Goal.Measured = fmt.Sprintf("%.1f − %.1f = %+.1f ms%s", pg.P50Ms, null.P50Ms, added, errorNote(errs))
			if null.PerSec > 0 {
				ratio := pg.PerSec / null.PerSec
				rateGoal.Status = verdict(ratio >= minClosedRateRatio && errs == 0)
				rateGoal.Measured = fmt.Sprintf("%.0f / %.0f creates/s = %.0f%%%s", pg.PerSec, null.PerSec, ratio*100, errorNote(errs))
			}
		}
	}
	goals = append(goals, pacedGoal, p50Goal, rateGoal)
	for _, b := range bodyFiles {
		limit := maxBytesValidate
		if b.path == "/mutate" {
			limit = maxBytesMutate
		}
		g := goal{Goal: fmt.Sprintf("≤ %d KiB allocated per review, %s", limit>>10, bodyLabel(b.name, b.path)), Status: statusNotMeasured}
		for _, a := range allocs {
			if a.Body == b.name {
				g.Status = verdict(a.BytesPerOp <= float64(limit))
				g.Measured = fmt.Sprintf("%.1f KiB, %.0f allocations (go test -bench BenchmarkReview -benchmem)", a.BytesPerOp/1024, a.AllocsPerOp)
			}
		}
		goals = append(goals, g)
	}
	return goals
}

// bodyLabel is "nginx /mutate" for nginx-mutate.
func bodyLabel(name, path string) string {
	obj, _, _ := strings.Cut(name, "-")
	if obj == "deployment" {
		obj = "Deployment"
	}
	return obj + " " + path
}

// thousands formats a rate with thousands separators and no decimals.
func thousands(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return fmt.Sprint(x)
	}
	s := fmt.Sprintf("%.0f", math.Abs(x))
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if x < 0 && s != "0" {
		return "-" + b.String()
	}
	return b.String()
}
