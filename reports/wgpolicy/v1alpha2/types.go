package v1alpha2

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is wgpolicyk8s.io/v1alpha2.
var GroupVersion = schema.GroupVersion{Group: "wgpolicyk8s.io", Version: "v1alpha2"}

var (
	// SchemeBuilder registers PolicyReport and PolicyReportList.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &PolicyReport{}, &PolicyReportList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}

// PolicyResult is the outcome of a rule: pass, fail, warn, error or skip.
type PolicyResult string

// PolicySeverity is how critical a result is: critical, high, medium, low
// or info.
type PolicySeverity string

// PolicyReportSummary counts the results of a report by outcome.
type PolicyReportSummary struct {
	Pass  int `json:"pass"`
	Fail  int `json:"fail"`
	Warn  int `json:"warn"`
	Error int `json:"error"`
	Skip  int `json:"skip"`
}

// PolicyReportResult is what one policy rule found about the resources it
// names.
type PolicyReportResult struct {
	// Source is the policy engine that produced the result.
	Source string `json:"source"`
	// Policy names the policy.
	Policy string `json:"policy"`
	// Rule names the rule within the policy.
	Rule string `json:"rule,omitempty"`
	// Resources are the checked objects.
	Resources []corev1.ObjectReference `json:"resources,omitempty"`
	// ResourceSelector selects the checked objects, instead of Resources.
	ResourceSelector *metav1.LabelSelector `json:"resourceSelector,omitempty"`
	// Message says what was found.
	Message string `json:"message,omitempty"`
	// Result is the outcome.
	Result PolicyResult `json:"result,omitempty"`
	// Scored is whether the result counts towards a score.
	Scored bool `json:"scored,omitempty"`
	// Properties are further details, by name.
	Properties map[string]string `json:"properties,omitempty"`
	// Timestamp is when the result was found.
	Timestamp metav1.Timestamp `json:"timestamp,omitempty"`
	// Category groups policies.
	Category string `json:"category,omitempty"`
	// Severity is how critical the result is.
	Severity PolicySeverity `json:"severity,omitempty"`
}

// PolicyReport holds policy results for the objects of one namespace.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type PolicyReport struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Scope is the one object the report is about, if it is about one.
	Scope *corev1.ObjectReference `json:"scope,omitempty"`
	// ScopeSelector selects the objects the report is about, instead of
	// Scope.
	ScopeSelector *metav1.LabelSelector `json:"scopeSelector,omitempty"`
	// Summary counts the results by outcome.
	Summary PolicyReportSummary `json:"summary,omitempty"`
	// Results are the results.
	Results []PolicyReportResult `json:"results,omitempty"`
}

// PolicyReportList is a list of PolicyReports.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type PolicyReportList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PolicyReport `json:"items"`
}
