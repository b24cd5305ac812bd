package check

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/podguard/podguard/manifests"
	"github.com/podguard/podguard/policies"
)

// corpus writes a multi-document YAML file of n documents: for every four, a
// ConfigMap and three workloads (Deployment, StatefulSet, CronJob) that read
// it with envFrom and mount it, like `helm template` output.
func corpus(b *testing.B, n int) string {
	b.Helper()
	var sb strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			sb.WriteString("---\n")
		}
		app := i / 4
		switch i % 4 {
		case 0:
			fmt.Fprintf(&sb, `apiVersion: v1
kind: ConfigMap
metadata:
  name: app-%d-config
  namespace: team-%d
  labels: {app.kubernetes.io/name: app-%d}
data:
  LOG_LEVEL: info
  DATABASE_URL: postgres://db:5432/app
  FEATURE_FLAGS: "a,b,c"
  settings.yaml: |
    server:
      port: 8080
`, app, app%50, app)
		case 1:
			fmt.Fprintf(&sb, `apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%d
  namespace: team-%d
  labels: {app.kubernetes.io/name: app-%d}
spec:
  replicas: 3
  selector:
    matchLabels: {app.kubernetes.io/name: app-%d}
  template:
    metadata:
      labels: {app.kubernetes.io/name: app-%d}
      annotations: {podguard.io/logs: /var/log/app}
    spec:
      containers:
      - name: app
        image: 10.0.0.130:5000/team/app-%d:1.2.3
        ports: [{containerPort: 8080}]
        envFrom: [{configMapRef: {name: app-%d-config}}]
        volumeMounts:
        - {name: config, mountPath: /etc/app/settings.yaml, subPath: settings.yaml}
        resources:
          requests: {cpu: 100m, memory: 128Mi}
      volumes:
      - name: config
        configMap: {name: app-%d-config}
`, app, app%50, app, app, app, app, app, app)
		case 2:
			fmt.Fprintf(&sb, `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: app-%d-db, namespace: team-%d}
spec:
  serviceName: app-%d-db
  selector:
    matchLabels: {app: app-%d-db}
  template:
    metadata:
      labels: {app: app-%d-db}
    spec:
      containers:
      - name: db
        image: postgres:16
        envFrom: [{configMapRef: {name: app-%d-config}}]
        volumeMounts: [{name: data, mountPath: /var/lib/postgresql/data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 10Gi}}
`, app, app%50, app, app, app, app)
		case 3:
			fmt.Fprintf(&sb, `apiVersion: batch/v1
kind: CronJob
metadata: {name: app-%d-report, namespace: team-%d}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: report
            image: busybox:1.37
            command: [sh, -c, "echo report"]
            envFrom: [{configMapRef: {name: app-%d-config}}]
`, app, app%50, app)
		}
	}
	path := filepath.Join(b.TempDir(), "corpus.yaml")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkCheck is `podguard check -f corpus.yaml` over 10,000 documents
// without the process start: reading, parsing, and every policy. It reports
// documents per second and the peak resident memory of the process.
func BenchmarkCheck(b *testing.B) {
	const docs = 10_000
	path := corpus(b, docs)
	settings := &policies.Settings{}
	settings.ImagePullSecrets.Registries = []policies.RegistryRule{{Registry: "10.0.0.130:5000", Secrets: []string{"myregistrykey"}}}
	settings.Default()
	engine := policies.NewEngine(settings)
	// One pass outside the measurement: the first one pays for warming
	// caches and growing the heap, which a steady CI run does once.
	if loaded, _, errs := manifests.Load([]string{path}, nil); len(errs) == 0 {
		if _, err := Run(loaded, nil, errs, engine, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	runtime.GC()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		loaded, _, errs := manifests.Load([]string{path}, nil)
		if len(errs) > 0 || len(loaded) != docs {
			b.Fatalf("loaded %d documents, errors %v", len(loaded), errs)
		}
		rep, err := Run(loaded, nil, errs, engine, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if rep.Summary.Checked != docs*3/4 {
			b.Fatalf("checked %d objects", rep.Summary.Checked)
		}
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(docs*b.N)/elapsed.Seconds(), "docs/s")
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		b.ReportMetric(float64(ru.Maxrss)/1024, "peak-RSS-MiB")
	}
}
