package manifests

import (
	"fmt"
	"strings"
	"testing"
)

// benchStream is a `helm template`-like stream of n documents, alternating
// Deployments and ConfigMaps.
func benchStream(n int) []byte {
	var b strings.Builder
	for i := range n {
		b.WriteString("---\n")
		if i%2 == 0 {
			fmt.Fprintf(&b, `# Source: app/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%d
  namespace: team-a
  labels:
    app.kubernetes.io/name: app-%d
    app.kubernetes.io/instance: release
spec:
  replicas: 3
  selector:
    matchLabels:
      app.kubernetes.io/name: app-%d
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app-%d
    spec:
      serviceAccountName: app
      securityContext:
        runAsNonRoot: true
      containers:
      - name: app
        image: registry.example.com/team-a/app:1.2.3
        args: ["--port=8080", "--log-level=info"]
        ports:
        - name: http
          containerPort: 8080
        env:
        - name: MODE
          value: production
        envFrom:
        - configMapRef:
            name: app-%d
        resources:
          requests: {cpu: 100m, memory: 128Mi}
          limits: {memory: 256Mi}
        readinessProbe:
          httpGet: {path: /healthz, port: http}
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
`, i, i, i, i, i+1)
		} else {
			fmt.Fprintf(&b, `# Source: app/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-%d
  namespace: team-a
data:
  LOG_LEVEL: info
  config.yaml: |
    server:
      port: 8080
    features: [a, b, c]
`, i)
		}
	}
	return []byte(b.String())
}

func BenchmarkParse(b *testing.B) {
	const n = 10_000
	data := benchStream(n)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		docs, _, errs := Parse("bench.yaml", data)
		if len(docs) != n || len(errs) != 0 {
			b.Fatalf("got %d documents and errors %v, want %d documents", len(docs), errs, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "docs/s")
}
