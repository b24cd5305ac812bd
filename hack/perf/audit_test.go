package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

func TestScrapeSumsSeriesByNameAndByLabel(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`# HELP podguard_audit_objects Objects judged.
# TYPE podguard_audit_objects gauge
podguard_audit_objects{namespace="a",result="fail"} 2
podguard_audit_objects{namespace="a",result="pass"} 7
podguard_audit_objects{namespace="b",result="fail"} 1
podguard_audit_first_pass_duration_seconds_sum 1.5
podguard_state_guard_requests_total{result="warned"} 4
podguard_audit_first_pass_duration_seconds_count 1
go_memstats_heap_inuse_bytes 1.048576e+07
not a sample line
`))
	}))
	defer srv.Close()
	m, err := scrape(context.Background(), srv.Client(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	for series, want := range map[string]float64{
		"podguard_audit_objects":                              10,
		`podguard_audit_objects{result="fail"}`:               3,
		`podguard_audit_objects{namespace="a"}`:               9,
		`podguard_audit_objects{namespace="b",result="fail"}`: 1,
		"podguard_audit_first_pass_duration_seconds_count":    1,
		"podguard_audit_first_pass_duration_seconds_sum":      1.5,
		"go_memstats_heap_inuse_bytes":                        10 << 20,
	} {
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
}

func TestMemoryReadsThisProcess(t *testing.T) {
	peak, rss, err := memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || peak < rss {
		t.Errorf("peak %.1f MiB, RSS %.1f MiB: want 0 < RSS <= peak", peak, rss)
	}
	if _, _, err := memory(-1); err == nil {
		t.Error("memory(-1): no error")
	}
}
