package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/podguard/podguard/e2e/framework"
)

// The webhook configurations of phase B.
const (
	configNone     = "none"     // no podguard webhook configurations
	configNull     = "null"     // podguard's configurations, pointed at the null webhook
	configPodguard = "podguard" // podguard's configurations, pointed at podguard
)

var probeSeq atomic.Int64

// seen counts the reviews each server answered, per webhook.
type seen struct{ nullMutate, nullValidate, pgMutate, pgValidate int64 }

func (e *env) observe(ctx context.Context, client *http.Client) (seen, error) {
	var s seen
	if e.null != nil {
		counts, err := e.null.counts(ctx, client)
		if err != nil {
			return s, err
		}
		s.nullMutate, s.nullValidate = counts["/mutate"], counts["/validate"]
	}
	if e.podguard != nil {
		m, v, err := podguardReviews(ctx, client, e.podguard.MetricsURL)
		if err != nil {
			return s, err
		}
		s.pgMutate, s.pgValidate = m, v
	}
	return s, nil
}

// podguardReviews sums podguard_admission_duration_seconds_count per webhook.
func podguardReviews(ctx context.Context, client *http.Client, metricsURL string) (mutate, validate int64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "podguard_admission_duration_seconds_count{") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parsing metric line %q: %w", line, err)
		}
		switch {
		case strings.Contains(line, `webhook="mutate"`):
			mutate += int64(v)
		case strings.Contains(line, `webhook="validate"`):
			validate += int64(v)
		}
	}
	return mutate, validate, sc.Err()
}

// switchTo installs the webhook configurations of config and returns once
// the API server demonstrably uses them: a probe pod created in the
// opted-in namespace reached both webhooks of the wanted server and
// nothing else, or, for configNone, no webhook at all.
func (e *env) switchTo(ctx context.Context, config string) error {
	c := e.cluster.Client
	switch config {
	case configNone:
		if err := framework.UninstallWebhooks(ctx, c); err != nil {
			return err
		}
	case configNull:
		if err := framework.InstallWebhooks(ctx, c, e.overlay, e.null.URL, e.caPEM); err != nil {
			return err
		}
	case configPodguard:
		if err := framework.InstallWebhooks(ctx, c, e.overlay, e.podguard.URL, e.caPEM); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown configuration %q", config)
	}
	client := httpsClient(e.caPEM)
	var last string
	err := framework.Eventually(ctx, 60*time.Second, 100*time.Millisecond, func() (bool, error) {
		before, err := e.observe(ctx, client)
		if err != nil {
			return false, err
		}
		name := fmt.Sprintf("probe-%d", probeSeq.Add(1))
		if err := c.Create(ctx, nginxPod(namespace, name)); err != nil {
			last = err.Error()
			return false, nil // a webhook being switched may fail a create
		}
		// Counters move when a review is answered, a moment after the API
		// server has its answer: give them a little time.
		var d seen
		for range 20 {
			after, err := e.observe(ctx, client)
			if err != nil {
				return false, err
			}
			d = seen{after.nullMutate - before.nullMutate, after.nullValidate - before.nullValidate,
				after.pgMutate - before.pgMutate, after.pgValidate - before.pgValidate}
			if config != configNone && d.nullMutate+d.nullValidate+d.pgMutate+d.pgValidate >= 2 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		last = fmt.Sprintf("probe %s seen by null mutate/validate %d/%d, podguard %d/%d", name, d.nullMutate, d.nullValidate, d.pgMutate, d.pgValidate)
		switch config {
		case configNone:
			return d == seen{}, nil
		case configNull:
			return d == seen{nullMutate: 1, nullValidate: 1}, nil
		default:
			return d == seen{pgMutate: 1, pgValidate: 1}, nil
		}
	})
	if err != nil {
		return fmt.Errorf("waiting for the API server to use configuration %q (last: %s): %w", config, last, err)
	}
	return nil
}
