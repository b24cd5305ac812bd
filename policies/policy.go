package policies

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Policy is anything the engine runs. Name is stable: it appears in config,
// in the podguard.io/skip annotation, in metrics and in every finding.
type Policy interface {
	Name() string
}

// Mutator is a policy that fills in or adds to a pod.
type Mutator interface {
	Policy
	// Mutate returns the mutated pod, or in.Pod itself when nothing needs to
	// change. It must not modify in.Pod, and mutating its own output again
	// must change nothing. It may also deny the pod (a malformed request for
	// a mutation) or warn.
	Mutate(in Input) (*Pod, Report)
}

// Validator is a policy that denies or warns about a pod.
type Validator interface {
	Policy
	Validate(in Input) Report
}

// Input is what a policy is given. Pod is read-only.
type Input struct {
	Pod   *Pod
	World World
	// Ctx, when set, is the request's: a policy stops early once it is
	// done (see cancelled), and the engine answers with an error.
	Ctx context.Context

	// exempt are the field paths of the containers an admin's image
	// exemption lifts from the policy: the Report that report returns
	// drops their findings before they count against the budget.
	exempt []string
}

// report starts a policy's Report for this input.
func (in Input) report() Report { return Report{exempt: in.exempt} }

// Finding is one thing a policy has to say: a violation or a warning.
type Finding struct {
	Policy  string `json:"policy"`
	Field   string `json:"field"`
	Message string `json:"message"`
	// Keys are the ConfigMap or Secret keys a finding is about, all of
	// them, where the message lists the first MaxListed, each cut to
	// MaxQuoted bytes: the keys envFrom drops, the key a volume turns into
	// a directory. Comparing two verdicts on one workload (the state
	// guard) compares these sets, never the messages. Empty for a finding
	// about no key, and for the findings beyond MaxFindingsPerPolicy that
	// the engine counts in one summary. Never printed: what podguard says
	// stays within the budgets below, and a ConfigMap may have 100,000 keys.
	Keys []string `json:"-"`
}

// KeyListID identifies a key list (Finding.Keys) by the array it lives in
// and its length: findings about one object share one list, so that a
// consumer can handle each list once however many findings carry it. The
// lists are never appended to, so one ID is always one content. The zero
// ID is the empty list's.
type KeyListID struct {
	first *string
	n     int
}

// KeyListOf returns the ID of keys.
func KeyListOf(keys []string) KeyListID {
	if len(keys) == 0 {
		return KeyListID{}
	}
	return KeyListID{&keys[0], len(keys)}
}

// WithoutKeys returns a copy of findings without their Keys, for findings
// kept beyond the judgment that made them (a report, a queued event, the
// background audit's verdicts): each one's keys may be every dropped key
// of a ConfigMap, and nothing printed reads them.
func WithoutKeys(findings []Finding) []Finding {
	out := slices.Clone(findings)
	for i := range out {
		out[i].Keys = nil
	}
	return out
}

func (f Finding) String() string {
	if f.Field == "" {
		return fmt.Sprintf("[%s] %s", f.Policy, f.Message)
	}
	return fmt.Sprintf("[%s] %s: %s", f.Policy, f.Field, f.Message)
}

// Report collects what one policy found in one pod. Policies fill in Field
// and Message; the engine stamps the policy name. Each message is cut to
// MaxMessageBytes. Beyond MaxFindingsPerPolicy violations (or warnings) a
// finding keeps its field path but no message (nothing is formatted for
// it): the engine lists the first MaxFindingsPerPolicy findings that are
// left once exemptions have been applied, and counts the rest. A Report
// from Input.report drops the findings in the containers exempt from the
// policy as they are made, so that they use up none of the budget.
type Report struct {
	Violations []Finding
	Warnings   []Finding

	// exempt are the field paths of the exempt containers.
	exempt []string

	listedViolations, listedWarnings int
	// lastPath and lastField remember the last path rendered, which a
	// policy that reports many findings at one field passes again and
	// again.
	lastPath   *field.Path
	lastField  string
	lastExempt bool
}

// notListed starts the message of a finding beyond the budget. A run of
// them at one field is folded into one, whose message ends with how many
// more it stands for.
const notListed = "\x00not listed:"

// isNotListed reports whether f is beyond the budget, and how many
// findings it stands for.
func isNotListed(f Finding) (int, bool) {
	rest, ok := strings.CutPrefix(f.Message, notListed)
	if !ok {
		return 0, false
	}
	n, _ := strconv.Atoi(rest)
	return 1 + n, true
}

// Deny records a violation at path. The message says what would go wrong at
// run time and how to fix it.
func (r *Report) Deny(path *field.Path, format string, args ...any) {
	if f := r.fieldOf(path); !r.lastExempt {
		r.Violations = add(r.Violations, &r.listedViolations, f, nil, format, args)
	}
}

// Warn records a warning at path.
func (r *Report) Warn(path *field.Path, format string, args ...any) {
	if f := r.fieldOf(path); !r.lastExempt {
		r.Warnings = add(r.Warnings, &r.listedWarnings, f, nil, format, args)
	}
}

// add records a finding, or, beyond the budget, its field path and keys
// only: a run of them at one path without keys (250,000 empty entries of
// one annotation) is folded into one, so that memory does not grow with
// them either. Findings with keys are never folded, so that their keys need
// not be merged; a policy makes at most a few of them at one path.
func add(list []Finding, listed *int, field string, keys []string, format string, args []any) []Finding {
	if *listed >= MaxFindingsPerPolicy {
		if last := len(list) - 1; last >= 0 && list[last].Field == field && len(keys) == 0 && len(list[last].Keys) == 0 {
			if n, ok := isNotListed(list[last]); ok {
				list[last].Message = notListed + strconv.Itoa(n)
				return list
			}
		}
		return append(list, Finding{Field: field, Message: notListed, Keys: keys})
	}
	*listed++
	return append(list, Finding{Field: field, Message: truncateMessage(fmt.Sprintf(format, args...)), Keys: keys})
}

// DenyFunc is Deny for a message that costs to build: msg is called only
// when the finding will be listed, so that a policy that finds thousands of
// problems formats only the first MaxFindingsPerPolicy.
func (r *Report) DenyFunc(path *field.Path, msg func() string) {
	if r.fieldOf(path); r.lastExempt || r.listedViolations >= MaxFindingsPerPolicy {
		r.Deny(path, "")
		return
	}
	r.Deny(path, "%s", msg())
}

// DenyKeysFunc is DenyFunc for a violation about keys of a ConfigMap or
// Secret: the finding carries all of keys (see Finding.Keys), which the
// caller must not change afterwards. The same keys may be shared by many
// findings.
func (r *Report) DenyKeysFunc(path *field.Path, keys []string, msg func() string) {
	f := r.fieldOf(path)
	if r.lastExempt {
		return
	}
	if r.listedViolations >= MaxFindingsPerPolicy {
		r.Violations = add(r.Violations, &r.listedViolations, f, keys, "", nil)
		return
	}
	r.Violations = add(r.Violations, &r.listedViolations, f, keys, "%s", []any{msg()})
}

// WarnFunc is Warn for a message that costs to build (see DenyFunc).
func (r *Report) WarnFunc(path *field.Path, msg func() string) {
	if r.fieldOf(path); r.lastExempt || r.listedWarnings >= MaxFindingsPerPolicy {
		r.Warn(path, "")
		return
	}
	r.Warn(path, "%s", msg())
}

// fieldOf renders path, and sets lastExempt to whether it lies in an
// exempt container.
func (r *Report) fieldOf(path *field.Path) string {
	if path == nil || path != r.lastPath {
		r.lastPath, r.lastField = path, pathString(path)
		r.lastExempt = len(r.exempt) > 0 && underAny(r.lastField, r.exempt)
	}
	return r.lastField
}

func pathString(p *field.Path) string {
	if p == nil {
		return ""
	}
	return p.String()
}
