package manifests

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Error is an input that could not be read or parsed: a path that does not
// exist, an unreadable or too large file, or a document that is not valid
// YAML or JSON or not a valid Kubernetes object.
type Error struct {
	// File is the path as given or found ("-" for stdin).
	File string
	// Line is the 1-based line of the problem, 0 when unknown or when the
	// problem is with the file as a whole.
	Line int
	Err  error
}

// Error returns "file:line: message", or "file: message" without a line.
func (e *Error) Error() string {
	msg := "unknown error"
	if e.Err != nil {
		msg = e.Err.Error()
	}
	switch {
	case e.File == "":
		return msg
	case e.Line > 0:
		return e.File + ":" + strconv.Itoa(e.Line) + ": " + msg
	default:
		return e.File + ": " + msg
	}
}

func (e *Error) Unwrap() error { return e.Err }

// Warning is something in an input that kubectl reads without complaint,
// and podguard reads the same way, but that the author likely did not mean:
// a key set twice (the last value wins), bytes that are not UTF-8 (read as
// U+FFFD), a document after a "..." marker (ignored). It never fails a
// check.
type Warning struct {
	// File is the path as given or found ("-" for stdin).
	File string
	// Line is the 1-based line it is about, 0 when unknown.
	Line int
	Msg  string
}

// String returns "file:line: message", as Error does.
func (w Warning) String() string {
	return (&Error{File: w.File, Line: w.Line, Err: errors.New(w.Msg)}).Error()
}

// problem is a message written for the user that keeps, for errors.Is and
// errors.As, the error it was made from.
type problem struct {
	msg   string
	cause error
}

func (p *problem) Error() string { return p.msg }
func (p *problem) Unwrap() error { return p.cause }

// inDocument prefixes a problem with the document (and List item) it is in,
// and, once known, the object's kind and name: `document 3 (Deployment
// "web"): ...`, `document 0, item 2: ...`.
func inDocument(where docRef, err error) error {
	return fmt.Errorf("%s: %w", where, err)
}

// docRef names a document, or an item of a List, in messages.
type docRef struct {
	index int
	item  int // -1 outside a List
	kind  string
	name  string
}

func (r docRef) String() string {
	var b strings.Builder
	b.WriteString("document ")
	b.WriteString(strconv.Itoa(r.index))
	if r.item >= 0 {
		b.WriteString(", item ")
		b.WriteString(strconv.Itoa(r.item))
	}
	if r.kind != "" {
		b.WriteString(" (")
		b.WriteString(r.kind)
		if r.name != "" {
			b.WriteString(" ")
			b.WriteString(strconv.Quote(r.name))
		}
		b.WriteString(")")
	}
	return b.String()
}

// yamlLine matches the line yaml puts in its messages: "line 3: ...".
var yamlLine = regexp.MustCompile(`^line (\d+): `)

// yamlProblem turns an error from sigs.k8s.io/yaml into a message without
// the library's prefixes, and the 1-based line it names within the document
// (0 if none). Duplicate keys come as a list of "line N: key "x" already set
// in map".
func yamlProblem(err error) (string, int) {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	if rest, ok := strings.CutPrefix(msg, "unmarshal errors:\n"); ok {
		var parts []string
		first := 0
		for _, l := range strings.Split(rest, "\n") {
			l = strings.TrimSpace(l)
			if l == "" {
				continue
			}
			n, text := cutLine(l)
			if first == 0 {
				first = n
			}
			parts = append(parts, duplicateKey(text))
		}
		return "invalid YAML: " + strings.Join(parts, "; "), first
	}
	n, text := cutLine(msg)
	switch {
	case strings.HasPrefix(text, "unsupported map key"), strings.HasPrefix(text, "invalid map key"):
		// A key that is a list or a mapping: JSON cannot represent it.
		return "invalid YAML: a key must be a string, a number or a boolean", n
	case strings.HasPrefix(text, "json: "):
		// A value JSON cannot represent, such as .inf or .nan.
		return "invalid YAML: " + strings.TrimPrefix(text, "json: "), n
	}
	return "invalid YAML: " + text, n
}

func cutLine(s string) (int, string) {
	m := yamlLine.FindStringSubmatch(s)
	if m == nil {
		return 0, s
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, s
	}
	return n, s[len(m[0]):]
}

// duplicateKey rewrites yaml.v2's `key "x" already set in map`.
func duplicateKey(s string) string {
	if k, ok := strings.CutSuffix(s, " already set in map"); ok {
		if k, ok = strings.CutPrefix(k, "key "); ok {
			return "duplicate key " + k
		}
	}
	return s
}

// jsonTypeError matches the message of a JSON value of the wrong type, as
// sigs.k8s.io/json (a fork of encoding/json whose error type is internal)
// reports it: "json: cannot unmarshal string into Go struct field
// DeploymentSpec.spec.replicas of type int32".
var jsonTypeError = regexp.MustCompile(`^json: cannot unmarshal (\S+(?: \S+)?) into Go (?:struct field [^.]*\.(\S+)|value) of type (.+)$`)

// typeProblem rewrites a JSON type error without Go's type names, and
// returns the field path it names ("spec.replicas"), if any:
// "spec.replicas: expected an integer, got a string". Other errors (such as
// a Quantity that does not parse) keep their message.
func typeProblem(err error) (string, string) {
	msg := err.Error()
	m := jsonTypeError.FindStringSubmatch(msg)
	if m == nil {
		return strings.TrimPrefix(msg, "json: "), ""
	}
	got, path, want := m[1], m[2], m[3]
	text := "expected " + describeGoType(want) + ", got " + describeJSONValue(got)
	if path == "" {
		return text, ""
	}
	return path + ": " + text, path
}

func describeGoType(t string) string {
	switch t {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "int", "uint", "int64", "uint64":
		return "an integer"
	case "int32", "uint32":
		return "a 32-bit integer"
	case "int16", "uint16", "int8", "uint8":
		return "a small integer"
	case "float32", "float64":
		return "a number"
	}
	switch {
	case t == "[]uint8":
		return "a base64 string"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["):
		return "an object"
	}
	// A struct, such as v1.PodSpec.
	return "an object"
}

func describeJSONValue(v string) string {
	switch v {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "number":
		return "a number"
	case "array":
		return "a list"
	case "object":
		return "an object"
	}
	// "number 1.5"
	return v
}
