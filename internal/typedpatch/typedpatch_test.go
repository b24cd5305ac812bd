package typedpatch_test

import (
	"encoding/json"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	"github.com/podguard/podguard/internal/typedpatch"
	"github.com/podguard/podguard/internal/typedpatch/patchtest"
)

type inner struct {
	A string `json:"a,omitempty"`
	N *int   `json:"n,omitempty"`
}

type Embedded struct {
	E string `json:"e,omitempty"`
}

type doc struct {
	Embedded  `json:",inline"`
	Name      string                       `json:"name"`
	Map       map[string]string            `json:"map,omitempty"`
	List      []inner                      `json:"list,omitempty"`
	Strings   []string                     `json:"strings"`
	Ptr       *inner                       `json:"ptr,omitempty"`
	Zero      inner                        `json:"zero,omitzero"`
	Plain     inner                        `json:"plain"`
	Q         resource.Quantity            `json:"q"`
	Quantites map[string]resource.Quantity `json:"quantities,omitempty"`
	Time      metav1.Time                  `json:"time,omitzero"`
	Port      intstr.IntOrString           `json:"port,omitempty"`
	Skipped   string                       `json:"-"`
	untagged  string
	NoTag     string
}

func base() *doc {
	return &doc{
		Name:    "x",
		Map:     map[string]string{"a/b": "1", "c~d": "2"},
		List:    []inner{{A: "one"}, {A: "two", N: ptr.To(2)}},
		Strings: []string{"s"},
		Ptr:     &inner{A: "p"},
		Plain:   inner{A: "plain"},
		Q:       resource.MustParse("1"),
	}
}

// TestDiffGivesTheOtherValue applies each patch to the first value's JSON
// and compares with the second's, and with what the full diff gives.
func TestDiffGivesTheOtherValue(t *testing.T) {
	tests := map[string]func(d *doc){
		"nothing":                          func(d *doc) {},
		"a string":                         func(d *doc) { d.Name = "y" },
		"an inlined field":                 func(d *doc) { d.E = "e" },
		"a map key with / and ~ added":     func(d *doc) { d.Map["x/y~z"] = "3" },
		"a map key removed":                func(d *doc) { delete(d.Map, "a/b") },
		"the map emptied (omitempty)":      func(d *doc) { d.Map = map[string]string{} },
		"a list element's field":           func(d *doc) { d.List[1].A = "deux" },
		"a nested pointer set":             func(d *doc) { d.List[0].N = ptr.To(1) },
		"a list grown":                     func(d *doc) { d.List = append(d.List, inner{A: "three"}) },
		"a list shrunk":                    func(d *doc) { d.List = d.List[:1] },
		"a list emptied":                   func(d *doc) { d.List = nil },
		"nil to empty without omitempty":   func(d *doc) { d.Strings = []string{} },
		"nil without omitempty":            func(d *doc) { d.Strings = nil },
		"a pointer cleared":                func(d *doc) { d.Ptr = nil },
		"a pointer's field":                func(d *doc) { d.Ptr.A = "q" },
		"an omitzero struct set":           func(d *doc) { d.Zero.A = "z" },
		"a plain struct emptied":           func(d *doc) { d.Plain = inner{} },
		"a quantity changed":               func(d *doc) { d.Q = resource.MustParse("2") },
		"a quantity respelt":               func(d *doc) { d.Q = resource.MustParse("1000m") },
		"a map of quantities":              func(d *doc) { d.Quantites = map[string]resource.Quantity{"cpu": resource.MustParse("100m")} },
		"a time set (omitzero, marshaler)": func(d *doc) { d.Time = metav1.Unix(1700000000, 0) },
		"an int-or-string":                 func(d *doc) { d.Port = intstr.FromString("http") },
		"a field JSON skips":               func(d *doc) { d.Skipped = "ignored" },
		"an unexported field":              func(d *doc) { d.untagged = "ignored" },
		"a field without a tag":            func(d *doc) { d.NoTag = "n" },
		"everything at once": func(d *doc) {
			d.Name, d.E, d.Map, d.List[0].A, d.Ptr, d.Zero.N = "z", "e", nil, "uno", &inner{N: ptr.To(0)}, ptr.To(9)
		},
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			before, after := base(), base()
			change(after)
			patchtest.Check(t, name, before, after)
		})
	}
}

func TestDiffOnlyEncodesWhatChanged(t *testing.T) {
	before, after := base(), base()
	after.List[1].A = "deux"
	ops, err := typedpatch.Diff(before, after)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 1 || ops[0].Path != "/list/1/a" || ops[0].Operation != "replace" {
		t.Errorf("got %v, want one replace of /list/1/a", ops)
	}
}

func TestDiffRefusesValuesOfDifferentTypes(t *testing.T) {
	for _, pair := range [][2]any{{base(), &inner{}}, {*base(), *base()}, {(*doc)(nil), base()}, {ptr.To(1), ptr.To(2)}} {
		if _, err := typedpatch.Diff(pair[0], pair[1]); err == nil {
			t.Errorf("Diff(%T, %T) gave no error", pair[0], pair[1])
		}
	}
}

// Shapes the pod types do not have, which encoding/json encodes with rules
// of its own: the walk must give the same document (by diffing the struct
// whole where it does not model the shape).
type Shadowed struct {
	Name  string `json:"name"`
	Other string `json:"other"`
}

type hidden struct {
	X string `json:"x"`
}

type ptrMarshaler struct{ v string }

func (p *ptrMarshaler) MarshalJSON() ([]byte, error) { return json.Marshal("p:" + p.v) }

type zeroer interface{ IsZero() bool }

type odd struct {
	Shadowed
	Name  string         `json:"name"`
	N     int64          `json:"n,string"`
	Inner struct{ odd2 } `json:"inner"`
	PM    ptrMarshaler   `json:"pm"`
	Z     zeroer         `json:"z,omitzero"`
}

type odd2 struct {
	hidden
	*Embedded
	Y string `json:"y"`
}

func TestDiffOfShapesItDoesNotModel(t *testing.T) {
	tests := map[string]func(d *odd){
		"a shadowed field":              func(d *odd) { d.Shadowed.Name = "hidden" },
		"the field that shadows":        func(d *odd) { d.Name = "shown" },
		"a promoted field":              func(d *odd) { d.Other = "o" },
		"a ,string int":                 func(d *odd) { d.N = 5 },
		"an unexported embedded struct": func(d *odd) { d.Inner.X = "x" },
		"an embedded pointer set":       func(d *odd) { d.Inner.Embedded = &Embedded{E: "e"} },
		"a sibling of those":            func(d *odd) { d.Inner.Y = "y" },
		"a pointer-receiver marshaler":  func(d *odd) { d.PM.v = "w" },
		"an interface with omitzero":    func(d *odd) { d.Z = &metav1.Time{} },
	}
	for name, change := range tests {
		t.Run(name, func(t *testing.T) {
			before, after := &odd{}, &odd{}
			change(after)
			patchtest.Check(t, name, before, after)
		})
	}
}
