package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// httpsClient trusts only caPEM and speaks HTTP/2 when the server does.
func httpsClient(caPEM []byte) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 64,
		},
	}
}

// loadResult is what one loadgen run prints on stdout.
type loadResult struct {
	Reviews  int64   `json:"reviews"` // answered correctly within the window
	Errors   int64   `json:"errors"`  // wrong status, body or uid, or transport errors, within the window
	FirstErr string  `json:"firstError,omitempty"`
	Seconds  float64 `json:"seconds"` // the measured window
	P50Ms    float64 `json:"p50Ms"`
	P99Ms    float64 `json:"p99Ms"`
	CPUNs    int64   `json:"cpuNs"`    // the server's CPU time in the window
	Protocol string  `json:"protocol"` // as negotiated, such as HTTP/2.0
}

// runLoadgen is the loadgen subcommand: it posts a captured body to a URL
// from a fixed number of workers, for a warm-up and then a measured window,
// and prints a loadResult as JSON. The server's CPU time over the window is
// read from /proc/<pid>.
func runLoadgen(args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	url := fs.String("url", "", "URL to post to")
	bodyPath := fs.String("body", "", "AdmissionReview to post")
	caPath := fs.String("ca", "", "CA certificate (PEM) to trust")
	pid := fs.Int("pid", 0, "the server's process id, for its CPU time")
	conc := fs.Int("concurrency", 16, "requests in flight")
	warmup := fs.Duration("warmup", time.Second, "warm-up before the measured window")
	dur := fs.Duration("duration", 3*time.Second, "measured window")
	if err := fs.Parse(args); err != nil {
		return err
	}
	data, err := os.ReadFile(*bodyPath)
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(*caPath)
	if err != nil {
		return err
	}
	tmpl, err := newUIDTemplate(data)
	if err != nil {
		return err
	}
	res, err := generate(*url, tmpl, httpsClient(caPEM), *pid, *conc, *warmup, *dur)
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// uidTemplate is a review body split around every occurrence of its
// request uid, to make each request's uid unique.
type uidTemplate struct{ parts [][]byte }

func newUIDTemplate(data []byte) (*uidTemplate, error) {
	var review struct {
		Request *struct {
			UID string `json:"uid"`
		} `json:"request"`
	}
	if err := json.Unmarshal(data, &review); err != nil {
		return nil, fmt.Errorf("decoding the body: %w", err)
	}
	if review.Request == nil || review.Request.UID == "" {
		return nil, errors.New("the body has no request uid")
	}
	return &uidTemplate{parts: bytes.Split(data, []byte(`"`+review.Request.UID+`"`))}, nil
}

// body returns the body with uid in place of the captured uid.
func (t *uidTemplate) body(uid string) []byte {
	return bytes.Join(t.parts, []byte(`"`+uid+`"`))
}

// uid is a 36-character uuid-shaped string unique per (worker, n).
func uid(worker, n int) string {
	return fmt.Sprintf("00000000-0000-4000-%04x-%012x", worker&0xffff, n)
}

func generate(url string, tmpl *uidTemplate, client *http.Client, pid, conc int, warmup, dur time.Duration) (*loadResult, error) {
	type workerResult struct {
		lat      []time.Duration
		errs     int64
		firstErr string
		proto    string
	}
	var (
		wg       sync.WaitGroup
		results  = make([]workerResult, conc)
		start    = time.Now()
		winStart = start.Add(warmup)
		winEnd   = winStart.Add(dur)
	)
	ctx, cancel := context.WithDeadline(context.Background(), winEnd.Add(5*time.Second))
	defer cancel()
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[w]
			for n := 0; ; n++ {
				t0 := time.Now()
				if !t0.Before(winEnd) {
					return
				}
				id := uid(w, n)
				proto, err := post(ctx, client, url, tmpl.body(id), id)
				t1 := time.Now()
				in := !t0.Before(winStart) && !t1.After(winEnd)
				if err != nil {
					if in {
						r.errs++
					}
					if r.firstErr == "" {
						r.firstErr = err.Error()
					}
					continue
				}
				r.proto = proto
				if in {
					r.lat = append(r.lat, t1.Sub(t0))
				}
			}
		}()
	}
	// CPU time over the window.
	time.Sleep(time.Until(winStart))
	cpu0, err := procCPU(pid)
	if err != nil {
		return nil, err
	}
	time.Sleep(time.Until(winEnd))
	cpu1, err := procCPU(pid)
	if err != nil {
		return nil, err
	}
	wg.Wait()

	res := &loadResult{Seconds: dur.Seconds(), CPUNs: cpu1 - cpu0}
	var all []time.Duration
	for _, r := range results {
		all = append(all, r.lat...)
		res.Errors += r.errs
		if res.FirstErr == "" {
			res.FirstErr = r.firstErr
		}
		if r.proto != "" {
			res.Protocol = r.proto
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	res.Reviews = int64(len(all))
	res.P50Ms = ms(percentile(all, 50))
	res.P99Ms = ms(percentile(all, 99))
	return res, nil
}

// post sends one review and checks that the answer is a 200
// AdmissionReview with the same uid.
func post(ctx context.Context, client *http.Client, url string, data []byte, id string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.Proto, err
	}
	if resp.StatusCode != http.StatusOK {
		return resp.Proto, fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(out)))
	}
	var review struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Response   *struct {
			UID     string `json:"uid"`
			Allowed bool   `json:"allowed"`
		} `json:"response"`
	}
	if err := json.Unmarshal(out, &review); err != nil {
		return resp.Proto, fmt.Errorf("decoding the answer: %w", err)
	}
	if review.Kind != "AdmissionReview" || review.APIVersion != "admission.k8s.io/v1" || review.Response == nil {
		return resp.Proto, fmt.Errorf("the answer is not an admission.k8s.io/v1 AdmissionReview with a response: %.200s", out)
	}
	if review.Response.UID != id {
		return resp.Proto, fmt.Errorf("the answer has uid %q, want %q", review.Response.UID, id)
	}
	return resp.Proto, nil
}
