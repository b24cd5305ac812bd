// Package typedpatch computes the JSON patch between two typed values at a
// cost that follows what changed, not the size of the values.
package typedpatch

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"gomodules.xyz/jsonpatch/v2"
)

// Diff returns the JSON patch that turns before into after, as they encode
// with encoding/json: applied to json.Marshal(before), it gives
// json.Marshal(after), as jsonpatch.CreatePatch over both encodings would,
// at a cost that follows what changed rather than the size of the values.
//
// It walks both values side by side, field by field, with encoding/json's
// rules (names from the json tags, omitempty and omitzero, inlined embedded
// structs, a type's own MarshalJSON):
//   - a field present on one side only is added or removed;
//   - a struct, a non-nil pointer to one, or a list of them is walked into;
//     elements a list gains or loses at its end are added or removed;
//   - a scalar that differs is replaced; a map that differs is diffed key by
//     key by jsonpatch.CreatePatch; any other value (a list of scalars, a
//     Quantity, a Time) is compared encoded and replaced whole if it
//     differs.
//
// Only the values that differ are encoded; the operations are
// gomodules.xyz/jsonpatch/v2's. A struct whose JSON names repeat (where
// encoding/json's dominance rules decide), with a ",string" field, or that
// embeds a pointer, an unexported struct or a type with its own encoding,
// is not walked: it is diffed whole by jsonpatch.CreatePatch. None of the
// pod types is such a struct. policies.TestTypedPatchMatchesAFullDiff checks the
// result, applied, against the full diff on every mutation golden and on
// generated pods; TestDiffGivesTheOtherValue does so for every shape above.
//
// before and after must be non-nil pointers to values of the same struct type.
func Diff(before, after any) ([]jsonpatch.JsonPatchOperation, error) {
	return DiffAt("", before, after)
}

// DiffAt is Diff for two values that sit at prefix, a JSON pointer such as
// "/spec", in the document the patch applies to.
func DiffAt(prefix string, before, after any) ([]jsonpatch.JsonPatchOperation, error) {
	b, a := reflect.ValueOf(before), reflect.ValueOf(after)
	if b.Kind() != reflect.Pointer || b.IsNil() || a.Kind() != reflect.Pointer || a.IsNil() ||
		b.Type() != a.Type() || b.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("typedpatch: want two non-nil pointers to the same struct type, got %T and %T", before, after)
	}
	w := walker{path: append(make([]byte, 0, 128), prefix...)}
	err := w.walkStruct(b.Elem(), a.Elem())
	return w.ops, err
}

// walker holds the diff being built and the JSON pointer (RFC 6901) of the
// value being compared, as a stack of bytes: a name is appended on the way
// down and cut on the way back, and a string is made only for an
// operation.
type walker struct {
	path []byte
	ops  []jsonpatch.JsonPatchOperation
}

// push appends a field name to the path and returns the length to pop to.
func (w *walker) push(name string) int {
	n := len(w.path)
	w.path = appendEscaped(append(w.path, '/'), name)
	return n
}

// pushIndex appends a list index to the path.
func (w *walker) pushIndex(i int) int {
	n := len(w.path)
	w.path = strconv.AppendInt(append(w.path, '/'), int64(i), 10)
	return n
}

func (w *walker) pop(n int) { w.path = w.path[:n] }

// op records an operation at the current path.
func (w *walker) op(kind string, value any) {
	w.ops = append(w.ops, jsonpatch.NewOperation(kind, string(w.path), value))
}

// jsonField is what encoding/json makes of one struct field.
type jsonField struct {
	index     int
	name      string // JSON name; empty for an inlined embedded struct
	inline    bool
	omitEmpty bool
	omitZero  bool
	leaf      bool // the walk does not descend into it
	// isZero is how omitzero tests the field: its own IsZero method, on
	// the value or on a pointer to it, or else reflect's zero test.
	isZero zeroTest
}

type zeroTest uint8

const (
	zeroByReflect zeroTest = iota
	zeroByValueMethod
	zeroByPointerMethod
)

var (
	fieldCache     sync.Map // reflect.Type -> []jsonField
	marshalerType  = reflect.TypeFor[json.Marshaler]()
	isZeroerType   = reflect.TypeFor[interface{ IsZero() bool }]()
	textMarshalerT = reflect.TypeFor[interface{ MarshalText() ([]byte, error) }]()
)

// typeInfo is what the walk knows of a struct type.
type typeInfo struct {
	fields []jsonField
	// names are the JSON names of the fields, inlined ones included.
	names []string
	// modelled is false for a struct the walk does not compare field by
	// field: one whose JSON names repeat (encoding/json's dominance rules
	// then apply), with a ",string" field, or that embeds a pointer, an
	// unexported struct or a type with its own encoding. It is diffed
	// whole instead.
	modelled bool
}

// fieldsOf lists the fields encoding/json encodes for a struct type.
func fieldsOf(t reflect.Type) *typeInfo {
	if ti, ok := fieldCache.Load(t); ok {
		return ti.(*typeInfo)
	}
	ti := &typeInfo{modelled: true}
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		f := jsonField{index: i, name: name}
		for opt := range strings.SplitSeq(opts, ",") {
			switch opt {
			case "omitempty":
				f.omitEmpty = true
			case "omitzero":
				f.omitZero = true
			case "string":
				ti.modelled = false
			}
		}
		if sf.Anonymous && name == "" {
			ft := sf.Type
			switch {
			case ft.Kind() == reflect.Struct && sf.IsExported() && !hasOwnEncoding(ft):
				f.inline = true
				inner := fieldsOf(ft)
				ti.names = append(ti.names, inner.names...)
				ti.modelled = ti.modelled && inner.modelled
				ti.fields = append(ti.fields, f)
			case !sf.IsExported() && ft.Kind() != reflect.Struct && !(ft.Kind() == reflect.Pointer && ft.Elem().Kind() == reflect.Struct):
				// encoding/json ignores it.
			default:
				ti.modelled = false
			}
			continue
		}
		if !sf.IsExported() {
			continue
		}
		switch {
		case sf.Type.Implements(isZeroerType):
			f.isZero = zeroByValueMethod
		case reflect.PointerTo(sf.Type).Implements(isZeroerType):
			f.isZero = zeroByPointerMethod
		}
		if f.name == "" {
			f.name = sf.Name
		}
		f.leaf = !descendable(sf.Type)
		ti.names = append(ti.names, f.name)
		ti.fields = append(ti.fields, f)
	}
	seen := make(map[string]bool, len(ti.names))
	for _, n := range ti.names {
		if seen[n] {
			ti.modelled = false
		}
		seen[n] = true
	}
	fieldCache.Store(t, ti)
	return ti
}

// hasOwnEncoding reports whether encoding/json encodes t with a method of t
// (MarshalJSON or MarshalText) rather than field by field.
func hasOwnEncoding(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t.Implements(marshalerType) || pt.Implements(marshalerType) ||
		t.Implements(textMarshalerT) || pt.Implements(textMarshalerT)
}

// descendable reports whether the walk can compare t part by part.
func descendable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Struct:
		return !hasOwnEncoding(t)
	case reflect.Pointer:
		return t.Elem().Kind() == reflect.Struct && !hasOwnEncoding(t) && !hasOwnEncoding(t.Elem())
	case reflect.Slice:
		e := t.Elem()
		return e.Kind() == reflect.Struct && !hasOwnEncoding(t) && !hasOwnEncoding(e)
	}
	return false
}

// walkStruct compares two structs at the current path.
func (w *walker) walkStruct(b, a reflect.Value) error {
	if !fieldsOf(b.Type()).modelled {
		return w.diffWhole(b, a)
	}
	return w.walkFields(b, a)
}

func (w *walker) walkFields(b, a reflect.Value) error {
	for _, f := range fieldsOf(b.Type()).fields {
		bv, av := b.Field(f.index), a.Field(f.index)
		if f.inline {
			if err := w.walkFields(bv, av); err != nil {
				return err
			}
			continue
		}
		inB, inA := present(bv, f), present(av, f)
		if !inB && !inA {
			continue
		}
		if inB && inA && f.leaf && equalValues(bv, av) {
			continue
		}
		n := w.push(f.name)
		var err error
		switch {
		case !inA:
			w.op("remove", nil)
		case !inB:
			w.op("add", addressed(av))
		case f.leaf:
			err = w.diffLeaf(f.name, bv, av, n)
		default:
			err = w.walkValue(bv, av)
		}
		w.pop(n)
		if err != nil {
			return err
		}
	}
	return nil
}

// walkValue compares a struct, a pointer to one or a list of them, present
// on both sides, at the current path.
func (w *walker) walkValue(bv, av reflect.Value) error {
	switch bv.Kind() {
	case reflect.Struct:
		return w.walkStruct(bv, av)
	case reflect.Pointer:
		switch {
		case bv.IsNil() && av.IsNil(), bv.Pointer() == av.Pointer():
			return nil
		case bv.IsNil() || av.IsNil():
			// null on one side: the field has no omitempty.
			w.op("replace", addressed(av))
			return nil
		}
		return w.walkStruct(bv.Elem(), av.Elem())
	case reflect.Slice:
		if bv.IsNil() != av.IsNil() {
			// null on one side: the field has no omitempty.
			w.op("replace", addressed(av))
			return nil
		}
		if bv.Len() == av.Len() && (bv.Len() == 0 || bv.Pointer() == av.Pointer()) {
			return nil
		}
		common := min(bv.Len(), av.Len())
		for i := range common {
			n := w.pushIndex(i)
			err := w.walkStruct(bv.Index(i), av.Index(i))
			w.pop(n)
			if err != nil {
				return err
			}
		}
		// Elements added at the end, in order; removed ones from the last.
		for i := common; i < av.Len(); i++ {
			n := w.pushIndex(i)
			w.op("add", addressed(av.Index(i)))
			w.pop(n)
		}
		for i := bv.Len() - 1; i >= common; i-- {
			n := w.pushIndex(i)
			w.op("remove", nil)
			w.pop(n)
		}
		return nil
	}
	return fmt.Errorf("typedpatch: cannot walk a %s at %s", bv.Type(), w.path)
}

// diffLeaf compares a field present on both sides that the walk does not
// descend into, at the current path; parent is the length of its parent's
// path. A scalar that differs is replaced. Anything else is compared
// encoded; a map that differs is diffed key by key by jsonpatch
// ({name: before} against {name: after}, under the parent's path), and any
// other value is replaced whole.
func (w *walker) diffLeaf(name string, bv, av reflect.Value, parent int) error {
	switch bv.Kind() {
	case reflect.String, reflect.Bool, reflect.Float32, reflect.Float64,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		if !hasOwnEncoding(bv.Type()) {
			w.op("replace", addressed(av))
			return nil
		}
	}
	before, err := json.Marshal(addressed(bv))
	if err != nil {
		return fmt.Errorf("encoding %s: %w", w.path, err)
	}
	after, err := json.Marshal(addressed(av))
	if err != nil {
		return fmt.Errorf("encoding %s: %w", w.path, err)
	}
	if bytes.Equal(before, after) {
		return nil
	}
	if bv.Kind() == reflect.Map && !bv.IsNil() && !av.IsNil() {
		key, err := json.Marshal(name)
		if err != nil {
			return err
		}
		return w.appendDiff(wrap(key, before), wrap(key, after), string(w.path[:parent]))
	}
	w.op("replace", json.RawMessage(after))
	return nil
}

// equalValues is a cheap sufficient test for two values encoding the same.
func equalValues(b, a reflect.Value) bool {
	switch b.Kind() {
	case reflect.String:
		return b.String() == a.String()
	case reflect.Bool:
		return b.Bool() == a.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return b.Int() == a.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return b.Uint() == a.Uint()
	}
	return reflect.DeepEqual(b.Interface(), a.Interface())
}

// wrap encodes {key: val} from their encodings.
func wrap(key, val []byte) []byte {
	out := make([]byte, 0, len(key)+len(val)+3)
	out = append(out, '{')
	out = append(out, key...)
	out = append(out, ':')
	out = append(out, val...)
	return append(out, '}')
}

// diffWhole diffs two structs at the current path by encoding each whole.
func (w *walker) diffWhole(b, a reflect.Value) error {
	before, err := json.Marshal(addressed(b))
	if err != nil {
		return err
	}
	after, err := json.Marshal(addressed(a))
	if err != nil {
		return err
	}
	if bytes.Equal(before, after) {
		return nil
	}
	return w.appendDiff(before, after, string(w.path))
}

// appendDiff appends jsonpatch's diff of two JSON documents, its paths
// rooted at prefix.
func (w *walker) appendDiff(before, after []byte, prefix string) error {
	diff, err := jsonpatch.CreatePatch(before, after)
	if err != nil {
		return err
	}
	for _, op := range diff {
		op.Path = prefix + op.Path
		w.ops = append(w.ops, op)
	}
	return nil
}

// present reports whether encoding/json writes the field at all.
func present(v reflect.Value, f jsonField) bool {
	if f.omitEmpty && isEmptyValue(v) {
		return false
	}
	if f.omitZero {
		switch f.isZero {
		case zeroByValueMethod:
			if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
				return false
			}
			return !v.Interface().(interface{ IsZero() bool }).IsZero()
		case zeroByPointerMethod:
			if v.CanAddr() {
				return !v.Addr().Interface().(interface{ IsZero() bool }).IsZero()
			}
		}
		return !v.IsZero()
	}
	return true
}

// isEmptyValue is encoding/json's omitempty test.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64,
		reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// appendEscaped appends a name escaped for a JSON pointer (RFC 6901).
func appendEscaped(b []byte, name string) []byte {
	for i := range len(name) {
		switch c := name[i]; c {
		case '~':
			b = append(b, "~0"...)
		case '/':
			b = append(b, "~1"...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// addressed is v for encoding/json as json.Marshal(&whole) would see it: a
// pointer to it when it is addressable, so that a MarshalJSON or MarshalText
// with a pointer receiver is used.
func addressed(v reflect.Value) any {
	if v.CanAddr() {
		return v.Addr().Interface()
	}
	return v.Interface()
}
