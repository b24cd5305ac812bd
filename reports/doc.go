// Package reports writes the results of podguard's background audit as
// policy reports, one set per namespace, in the API that the ecosystem's
// report readers read, and reads them back after a restart.
//
// # Which API
//
// Two policy-report APIs are in use, and podguard writes either:
//
//   - openreports.io/v1alpha1 Report, the successor of the Policy Working
//     Group's API, from github.com/openreports/reports-api (v0.2.1: Go types,
//     a typed clientset and the CRDs, built against k8s.io v0.34, so it
//     leaves podguard's k8s.io v0.36.3 in place);
//   - wgpolicyk8s.io/v1alpha2 PolicyReport, the Working Group's API.
//
// What reads and writes them (checked in the sources, August 2026):
//
//   - Policy Reporter 3.2.0 and later (3.9.x is current) read both. At start
//     it asks discovery which of openreports.io/v1alpha1 and
//     wgpolicyk8s.io/v1alpha2 the API server serves and watches each one
//     that is (cmd/run.go and pkg/config/resolver.go in
//     github.com/kyverno/policy-reporter; its go.mod requires
//     reports-api v0.2.1). It fails to start only when neither is served.
//     It does not look again later: a Policy Reporter started before an
//     API's CRDs were installed sees that API after its next restart.
//   - Kyverno 1.15 to 1.19.1 (the latest) write wgpolicyk8s.io/v1alpha2 by
//     default and openreports.io/v1alpha1 only with --openreportsEnabled
//     (cmd/internal/flag.go: default false; Helm value openreports.enabled,
//     default false). Its chart installs the wgpolicyk8s.io CRDs by default.
//     Kyverno's docs call OpenReports "an initial step to eventually
//     deprecate wgpolicyk8s" (kyverno.io/docs/policy-reports/openreports).
//   - Kubewarden's chart stopped installing the wgpolicyk8s.io CRDs by
//     default in 2026, in favour of OpenReports (kubewarden/adm-controller
//     pull request 1548).
//
// So the choice, for audit.reports: auto (the default): openreports.io/v1alpha1 when
// the API server serves it, since it is where Kyverno and Kubewarden are
// going and Policy Reporter reads it; else wgpolicyk8s.io/v1alpha2 when served,
// the API of a cluster that has Kyverno with its default settings, which
// Policy Reporter reads too; else none (Detect; the caller asks again from
// time to time, as CRDs come and go). Either may be configured explicitly.
// deploy/components/policy-reports installs the openreports.io CRDs for a
// cluster that has none of these tools.
//
// No Go module podguard can depend on serves the wgpolicyk8s.io types (the
// Working Group's prototypes are not on the module proxy; Kyverno and
// Policy Reporter keep theirs in their main modules), so package
// reports/wgpolicy/v1alpha2 defines them from the CRD schema, and the tests
// validate every report against the vendored CRDs of both APIs (crds/).
//
// # What a report holds
//
// One namespace's reports hold a result per (object, policy, field path):
// the workload (or bare Pod) as the result's resource, with its UID; policy
// and rule (podguard's policies have no rules of their own, so the rule is
// the policy's name again, as for a Kyverno policy with one rule); the
// status; a severity; the message; and properties: "field" (the field
// path), "mode" (enforce, warn or audit: how admission treats the
// violation, which is not how bad it is) and "resultID" (a stable
// identifier of the finding, which Policy Reporter uses instead of hashing
// the result, so that two findings of one policy on one object with the
// same message but different fields stay two results). Results carry the
// source "podguard" (and so does a Report). Scored is false for warn
// results, which by the API's definition are not scored, and true
// otherwise.
//
// Severity is the policy's, whatever the result (as Kyverno does with a
// policy's severity annotation), unless the caller sets one: high for
// envfrom-keys and mount-shadowing (a pod that starts without environment
// variables, or with a directory of its image hidden, misbehaves at run
// time), medium for the other policies (see SeverityFor).
//
// A namespace's results go in one report named "podguard", labelled
// app.kubernetes.io/managed-by=podguard. When they would make the object too
// large for etcd (1.5 MiB a request), they are split into "podguard-2",
// "podguard-3", ..., each with at most MaxResultsPerReport results and
// MaxResultBytesPerReport bytes of results. Names are fixed, so two writers
// (a restarted podguard, two replicas) can never make duplicates: they
// create or update the same objects.
//
// A result keeps the timestamp of the first audit that found it, for as
// long as it is found unchanged: an audit that finds what the last one
// found writes nothing.
package reports
