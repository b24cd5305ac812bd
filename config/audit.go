package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

// AuditConfig configures the background audit of `podguard serve`: the same
// policies run over the Pods and workloads already in the cluster, again
// whenever what a verdict depends on changes, with the results written as
// policy reports, metrics and events; and the guard on ConfigMap and Secret
// writes that would break the workloads that read them.
//
//	audit:
//	  background: true
//	  interval: 1h          # a full pass, besides the passes changes trigger
//	  reports: auto         # or openreports.io/v1alpha1, wgpolicyk8s.io/v1alpha2, none
//	  events: true          # a Warning event when a workload's verdict turns to fail
//	  guard: warn           # or deny, off
//
// The background audit is off in the built-in defaults (it lists and
// watches every workload of the cluster, which needs RBAC and memory); the
// shipped deploy/ config turns it on.
type AuditConfig struct {
	// Background runs the audit in `podguard serve`, on the replica that
	// holds the audit lease. Default false.
	Background *bool `json:"background,omitempty"`
	// Interval is how often every workload is judged again, besides the
	// passes that a change triggers (a ConfigMap's or Secret's key names, a
	// Node's kubelet, a namespace's labels, a config reload). Default 1h,
	// at least 1m.
	Interval *Duration `json:"interval,omitempty"`
	// Reports is the policy-report API the results are written in: "auto"
	// (default: openreports.io/v1alpha1 when the API server serves it, else
	// wgpolicyk8s.io/v1alpha2, else none), one of those two, or "none".
	Reports string `json:"reports,omitempty"`
	// Events records a Warning event on a workload whose verdict turns from
	// pass to fail. Default true.
	Events *bool `json:"events,omitempty"`
	// Guard is what a ConfigMap or Secret CREATE or UPDATE gets when it would
	// make running workloads' pods lose environment variables, or change
	// what a mount hides, on their next start: "warn" (default: admitted, with
	// a warning naming the workloads), "deny" (refused when admission would
	// refuse those pods, i.e. in enforce mode; warned otherwise), or "off". It needs the
	// webhook rule for configmaps (and secrets) in the
	// ValidatingWebhookConfiguration.
	Guard GuardMode `json:"guard,omitempty"`
}

// GuardMode is audit.guard. YAML reads an unquoted off as false, so false
// is taken for "off" too.
type GuardMode string

func (g *GuardMode) UnmarshalJSON(b []byte) error {
	if string(b) == "false" {
		*g = GuardOff
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &json.UnmarshalTypeError{Value: string(b), Type: reflect.TypeFor[GuardMode]()}
	}
	*g = GuardMode(s)
	return nil
}

// Report APIs and guard modes.
const (
	ReportsAuto        = "auto"
	ReportsOpenReports = "openreports.io/v1alpha1"
	ReportsWGPolicy    = "wgpolicyk8s.io/v1alpha2"
	ReportsNone        = "none"

	GuardWarn GuardMode = "warn"
	GuardDeny GuardMode = "deny"
	GuardOff  GuardMode = "off"
)

// Audit defaults.
const (
	DefaultAuditInterval = time.Hour
	MinAuditInterval     = time.Minute
)

// BackgroundEnabled reports whether `podguard serve` runs the background audit.
func (c *AuditConfig) BackgroundEnabled() bool { return ptr.Deref(c.Background, false) }

// EventsEnabled reports whether pass-to-fail turns are recorded as events.
func (c *AuditConfig) EventsEnabled() bool { return ptr.Deref(c.Events, true) }

// Default fills the unset fields.
func (c *AuditConfig) Default() {
	if c.Interval == nil {
		c.Interval = &Duration{Duration: DefaultAuditInterval}
	}
	if c.Reports == "" {
		c.Reports = ReportsAuto
	}
	if c.Guard == "" {
		c.Guard = GuardWarn
	}
}

// Validate checks a defaulted AuditConfig; p is its path.
func (c *AuditConfig) Validate(p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c.Interval.Duration < MinAuditInterval {
		errs = append(errs, field.Invalid(p.Child("interval"), c.Interval.Duration.String(), fmt.Sprintf("must be at least %s: changes trigger their own passes, the interval only catches what no event told", MinAuditInterval)))
	}
	switch c.Reports {
	case ReportsAuto, ReportsOpenReports, ReportsWGPolicy, ReportsNone:
	default:
		errs = append(errs, field.NotSupported(p.Child("reports"), c.Reports, []string{ReportsAuto, ReportsOpenReports, ReportsWGPolicy, ReportsNone}))
	}
	switch c.Guard {
	case GuardWarn, GuardDeny, GuardOff:
	default:
		errs = append(errs, field.NotSupported(p.Child("guard"), c.Guard, []GuardMode{GuardWarn, GuardDeny, GuardOff}))
	}
	return errs
}
