package manifests

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// Document is one Kubernetes object read from the input.
type Document struct {
	// File is the path as found (walked paths joined with the folder
	// given), or "-" for stdin.
	File string
	// Index is the 0-based index of the YAML or JSON document within the
	// file. Empty documents (only comments, or nothing, between separators)
	// are not counted.
	Index int
	// Line is the 1-based line where the document starts: its first line
	// that is not blank or a comment. For a List item, the List's.
	Line int
	// Item is the index within a List, or -1.
	Item int
	// Object is typed (*corev1.Pod, *appsv1.Deployment, ...) for the kinds
	// client-go's scheme knows, and *unstructured.Unstructured otherwise.
	Object k8sruntime.Object
	// Raw is the document as JSON.
	Raw []byte
}

var (
	errBinary = errors.New("binary file, not YAML or JSON")
	errTooBig = errors.New("file is too large")
	errPanic  = errors.New("internal error")
	utf8BOM   = []byte("\xef\xbb\xbf")
	sepDashes = []byte("---")
	endMarker = []byte("...")
)

// minDocsPerWorker is the number of documents per core below which a file
// is decoded on one: goroutines cost more than they save on a few.
const minDocsPerWorker = 64

// maxFileSize is the largest input read: a larger one is refused, rather
// than held in memory whole. A variable so that tests can lower it.
var maxFileSize int64 = 64 << 20

func tooLarge() error {
	return &problem{msg: fmt.Sprintf("file is larger than %s; refusing to read it", sizeString(maxFileSize)), cause: errTooBig}
}

func sizeString(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// Parse reads one file's content: a YAML stream of one or more documents, a
// JSON object, or a stream of JSON objects. name is used in the Documents
// and errors. It returns every document it could decode, and one *Error per
// document (or List item) it could not; a bad document does not stop the
// others. Empty input returns nothing.
func Parse(name string, data []byte) ([]Document, []error) {
	if int64(len(data)) > maxFileSize {
		return nil, []error{&Error{File: name, Err: tooLarge()}}
	}
	if bytes.IndexByte(data, 0) >= 0 || !utf8.Valid(data) {
		return nil, []error{&Error{File: name, Err: errBinary}}
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	var (
		chunks []chunk
		errs   []error
	)
	if isJSON(data) {
		var err *Error
		chunks, err = splitJSON(name, data)
		if err != nil {
			errs = append(errs, err)
		}
	} else {
		chunks = splitYAML(data)
	}
	docs, decodeErrs := decodeChunks(name, chunks)
	// The JSON syntax error, if any, is after the last document read.
	return docs, append(decodeErrs, errs...)
}

// chunk is the text of one document.
type chunk struct {
	index int
	// line is the document's first line that is not blank or a comment.
	line int
	// base is the file's line number of data's first line: yaml's line
	// numbers count from there.
	base int
	data []byte
	json bool
}

// lastLine is the file's line number of the document's last line.
func (c *chunk) lastLine() int {
	n := bytes.Count(c.data, []byte{'\n'})
	if len(c.data) > 0 && c.data[len(c.data)-1] != '\n' {
		n++
	}
	return c.base + max(n, 1) - 1
}

// isJSON reports whether the input is JSON: its first character, after
// white space, opens an object. A JSON stream of several objects is not
// YAML, so it must be told apart before splitting. YAML whose first document
// is a flow mapping is read as JSON too, as kubectl does.
func isJSON(data []byte) bool {
	for _, c := range data {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		}
		return false
	}
	return false
}

// splitYAML cuts a YAML stream into its documents, in one pass: a document
// ends at a line that starts with "---" (or "...") followed by white space,
// a comment or the end of the line. Per the YAML spec these markers cannot
// occur inside a document, even in a block scalar, which is indented.
// Documents with nothing but comments and blank lines are dropped.
func splitYAML(data []byte) []chunk {
	var chunks []chunk
	start, base, first := 0, 1, 0 // the current document: offset, line, first content line
	flush := func(end int) {
		if first != 0 {
			chunks = append(chunks, chunk{index: len(chunks), line: first, base: base, data: data[start:end]})
		}
	}
	lineNo := 0
	for pos := 0; pos < len(data); {
		end, next := len(data), len(data)
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			end, next = pos+i, pos+i+1
		}
		lineNo++
		line := bytes.TrimSuffix(data[pos:end], []byte{'\r'})
		switch {
		case isMarker(line, sepDashes):
			// The document starts at the separator, which yaml accepts,
			// so that content on the same line ("--- {a: 1}") is kept and
			// yaml's line numbers stay in step with the file's.
			flush(pos)
			start, base, first = pos, lineNo, 0
			if isContent(line[3:]) {
				first = lineNo
			}
		case isMarker(line, endMarker):
			flush(pos)
			start, base, first = next, lineNo+1, 0
		case first == 0 && isContent(line) && line[0] != '%':
			// A line starting with % before any content is a directive
			// (%YAML 1.2), not content.
			first = lineNo
		}
		pos = next
	}
	flush(len(data))
	return chunks
}

func isMarker(line, marker []byte) bool {
	return bytes.HasPrefix(line, marker) && (len(line) == 3 || line[3] == ' ' || line[3] == '\t')
}

// isContent reports whether a line holds more than white space and a
// comment.
func isContent(line []byte) bool {
	for _, c := range line {
		switch c {
		case ' ', '\t', '\r':
			continue
		case '#':
			return false
		}
		return true
	}
	return false
}

// splitJSON cuts a stream of JSON values into documents. A syntax error
// ends the stream, as there is no telling where the next value starts.
func splitJSON(name string, data []byte) ([]chunk, *Error) {
	var chunks []chunk
	lines := lineCounter{data: data, line: 1}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			return chunks, nil
		}
		ref := docRef{index: len(chunks), item: -1}
		if err != nil {
			offset := int64(len(data))
			msg := err.Error()
			var syntax *json.SyntaxError
			if errors.As(err, &syntax) {
				offset = syntax.Offset
			} else if errors.Is(err, io.ErrUnexpectedEOF) {
				msg = "unexpected end of input"
			}
			return chunks, &Error{File: name, Line: lines.at(int(offset)), Err: inDocument(ref, &problem{msg: "invalid JSON: " + msg, cause: err})}
		}
		end := int(dec.InputOffset())
		line := lines.at(end - len(raw))
		chunks = append(chunks, chunk{index: ref.index, line: line, base: line, data: raw, json: true})
	}
}

// lineCounter finds the line of increasing offsets in one pass over data.
type lineCounter struct {
	data []byte
	pos  int
	line int
}

func (c *lineCounter) at(offset int) int {
	offset = min(max(offset, c.pos), len(c.data))
	c.line += bytes.Count(c.data[c.pos:offset], []byte{'\n'})
	c.pos = offset
	return c.line
}

type chunkResult struct {
	docs []Document
	errs []error
}

// decodeChunks decodes the documents, on every core when there are many,
// and returns them in input order.
func decodeChunks(name string, chunks []chunk) ([]Document, []error) {
	results := make([]chunkResult, len(chunks))
	workers := min(runtime.GOMAXPROCS(0), len(chunks)/minDocsPerWorker)
	if workers <= 1 {
		for i := range chunks {
			results[i] = decodeChunk(name, &chunks[i])
		}
	} else {
		const batch = 16
		var next atomic.Int64
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for {
					from := int(next.Add(batch)) - batch
					if from >= len(chunks) {
						return
					}
					for i := from; i < min(from+batch, len(chunks)); i++ {
						results[i] = decodeChunk(name, &chunks[i])
					}
				}
			})
		}
		wg.Wait()
	}
	n := 0
	for _, r := range results {
		n += len(r.docs)
	}
	docs := make([]Document, 0, n)
	var errs []error
	for _, r := range results {
		docs = append(docs, r.docs...)
		errs = append(errs, r.errs...)
	}
	return docs, errs
}

// decodeChunk decodes one document: a single object, or the items of a
// List.
func decodeChunk(name string, c *chunk) (res chunkResult) {
	ref := docRef{index: c.index, item: -1}
	defer func() {
		// The decoders are meant not to panic on any input; should one
		// do so, that document is an error and the others are still read.
		if r := recover(); r != nil {
			res = chunkResult{errs: []error{&Error{File: name, Line: c.line, Err: inDocument(ref, &problem{msg: fmt.Sprintf("could not be decoded: %v", r), cause: errPanic})}}}
		}
	}()
	js := c.data
	var tm typeMeta // when the fast path read them
	if !c.json {
		var (
			ok  bool
			err error
		)
		if js, tm, ok = fastYAMLToJSON(c.data); !ok {
			js, err = yaml.YAMLToJSONStrict(c.data)
		}
		if err != nil {
			msg, n := yamlProblem(err)
			line := c.line
			if n > 0 {
				// yaml may name the line after the last, at the end of
				// the input.
				line = min(c.base+n-1, c.lastLine())
			}
			return chunkResult{errs: []error{&Error{File: name, Line: line, Err: inDocument(ref, &problem{msg: msg, cause: err})}}}
		}
	}
	if tm.APIVersion == "" || tm.Kind == "" {
		var err error
		if tm, err = typeMetaOf(js); err != nil {
			return chunkResult{errs: []error{c.fail(name, ref, "", err)}}
		}
	}
	items, isList, err := listItems(tm, js)
	if err != nil {
		return chunkResult{errs: []error{c.fail(name, ref, "", err)}}
	}
	if !isList {
		obj, err := decodeObject(tm, js, &ref)
		if err != nil {
			return chunkResult{errs: []error{c.fail(name, ref, "", err)}}
		}
		return chunkResult{docs: []Document{{File: name, Index: c.index, Line: c.line, Item: -1, Object: obj, Raw: js}}}
	}
	// Each bad item is reported, and does not hide the others: a List
	// gathers objects from many places.
	res.docs = make([]Document, 0, len(items))
	for i, item := range items {
		ref := docRef{index: c.index, item: i}
		obj, raw, err := decodeItem(tm, item, &ref)
		if err != nil {
			res.errs = append(res.errs, c.fail(name, ref, fmt.Sprintf("items[%d]", i), err))
			continue
		}
		res.docs = append(res.docs, Document{File: name, Index: c.index, Line: c.line, Item: i, Object: obj, Raw: raw})
	}
	return res
}

// fail reports err in the document: on the line of the first field it
// names, if it names fields, else of the List item at prefix ("items[2]"),
// else of the document's start. Field problems are listed in the order
// they appear in the document.
func (c *chunk) fail(name string, ref docRef, prefix string, err error) *Error {
	line := c.line
	var fe *fieldErrors
	switch {
	case errors.As(err, &fe):
		paths := make([]string, len(fe.fields))
		for i, f := range fe.fields {
			paths[i] = joinPath(prefix, f.path)
		}
		lines := locate(c.data, paths...)
		for i := range fe.fields {
			fe.fields[i].line = lines[i]
		}
		// Unlocated fields last.
		at := func(f fieldError) int {
			if f.line == 0 {
				return math.MaxInt
			}
			return f.line
		}
		slices.SortStableFunc(fe.fields, func(a, b fieldError) int { return cmp.Compare(at(a), at(b)) })
		if fe.fields[0].line > 0 {
			line = c.base + fe.fields[0].line - 1
		}
	case prefix != "":
		if n := locate(c.data, prefix)[0]; n > 0 {
			line = c.base + n - 1
		}
	}
	return &Error{File: name, Line: line, Err: inDocument(ref, err)}
}

func joinPath(prefix, path string) string {
	switch {
	case prefix == "":
		return path
	case path == "":
		return prefix
	}
	return prefix + "." + path
}

// fieldErrors are problems with fields of an object, such as unknown or
// duplicate fields, or a value of the wrong type.
type fieldErrors struct {
	fields []fieldError
	cause  error
	// capped is set when the decoder stopped counting: it keeps 100.
	capped bool
}

type fieldError struct {
	path string // "spec.replicas"; "" when unknown
	msg  string
	line int // within the document, once located; 0 if unknown
}

// maxListedFields is how many field problems a message lists: a document
// of the wrong kind can have a hundred unknown fields.
const maxListedFields = 10

func (e *fieldErrors) Error() string {
	var b strings.Builder
	for i, f := range e.fields[:min(len(e.fields), maxListedFields)] {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f.msg)
	}
	switch {
	case e.capped:
		b.WriteString(", and more")
	case len(e.fields) > maxListedFields:
		fmt.Fprintf(&b, ", and %d more", len(e.fields)-maxListedFields)
	}
	return b.String()
}

func (e *fieldErrors) Unwrap() error { return e.cause }

// typeMeta is a document's apiVersion and kind.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// typeMetaOf reads the apiVersion and kind of a JSON document, which must be
// an object.
func typeMetaOf(js []byte) (typeMeta, error) {
	var tm typeMeta
	if what := jsonKind(js); what != "an object" {
		return tm, fmt.Errorf("expected a Kubernetes object (a mapping with apiVersion and kind), got %s", what)
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		msg, _ := typeProblem(err)
		return tm, &problem{msg: msg, cause: err}
	}
	switch {
	case tm.Kind == "" && tm.APIVersion == "":
		return tm, errors.New("missing apiVersion and kind")
	case tm.Kind == "":
		return tm, errors.New("missing kind")
	case tm.APIVersion == "":
		return tm, errors.New("missing apiVersion")
	}
	return tm, nil
}

// jsonKind describes the JSON value js holds.
func jsonKind(js []byte) string {
	js = bytes.TrimLeft(js, " \t\r\n")
	if len(js) == 0 {
		return "nothing"
	}
	switch js[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// listItems returns the items of a List: kind List, or any kind ending in
// List (PodList, a CRD's FooList) that has an items array.
func listItems(tm typeMeta, js []byte) ([]json.RawMessage, bool, error) {
	if len(tm.Kind) < 4 || tm.Kind[len(tm.Kind)-4:] != "List" {
		return nil, false, nil
	}
	var l struct {
		Items *[]json.RawMessage `json:"items"`
	}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &l); err != nil {
		if tm.Kind != "List" {
			// A kind that happens to end in List.
			return nil, false, nil
		}
		return nil, false, errors.New("items: expected a list of objects")
	}
	switch {
	case l.Items != nil:
		return *l.Items, true, nil
	case tm.Kind == "List":
		return nil, true, nil
	}
	return nil, false, nil
}

// decodeItem decodes an item of a List. The items of a typed list (a
// DeploymentList) may leave out their apiVersion and kind, which are then
// the list's.
func decodeItem(list typeMeta, item []byte, ref *docRef) (k8sruntime.Object, []byte, error) {
	if jsonKind(item) == "an object" && list.Kind != "List" {
		var tm typeMeta
		if err := kjson.UnmarshalCaseSensitivePreserveInts(item, &tm); err == nil {
			item = withTypeMeta(item, tm, typeMeta{APIVersion: list.APIVersion, Kind: list.Kind[:len(list.Kind)-4]})
		}
	}
	tm, err := typeMetaOf(item)
	if err != nil {
		return nil, nil, err
	}
	obj, err := decodeObject(tm, item, ref)
	return obj, item, err
}

// withTypeMeta adds to a JSON object the apiVersion and kind it lacks.
func withTypeMeta(js []byte, have, want typeMeta) []byte {
	var add []byte
	if have.APIVersion == "" {
		v, _ := json.Marshal(want.APIVersion)
		add = append(append(append(add, `"apiVersion":`...), v...), ',')
	}
	if have.Kind == "" {
		v, _ := json.Marshal(want.Kind)
		add = append(append(append(add, `"kind":`...), v...), ',')
	}
	if len(add) == 0 {
		return js
	}
	js = bytes.TrimLeft(js, " \t\r\n")[1:] // after the {
	out := append([]byte{'{'}, add...)
	if rest := bytes.TrimLeft(js, " \t\r\n"); len(rest) > 0 && rest[0] == '}' {
		out = out[:len(out)-1] // no trailing comma in {}
	}
	return append(out, js...)
}

// decodeObject decodes a JSON object into the type client-go's scheme has
// for its kind, strictly: an unknown or duplicate field, or a value of the
// wrong type, is an error. Kinds the scheme does not know (CRDs) decode into
// Unstructured, where only duplicate fields are errors.
func decodeObject(tm typeMeta, js []byte, ref *docRef) (k8sruntime.Object, error) {
	ref.kind = tm.Kind
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		return nil, fmt.Errorf("invalid apiVersion %q", tm.APIVersion)
	}
	obj, err := scheme.Scheme.New(gv.WithKind(tm.Kind))
	var strict []error
	if err != nil {
		// Not a kind client-go knows: a CRD, or a version it dropped.
		m := map[string]any{}
		strict, err = kjson.UnmarshalStrict(js, &m, kjson.DisallowDuplicateFields)
		u := &unstructured.Unstructured{Object: m}
		ref.name, obj = u.GetName(), u
	} else {
		strict, err = kjson.UnmarshalStrict(js, obj)
		if m, merr := meta.Accessor(obj); merr == nil {
			ref.name = m.GetName()
		}
	}
	if err != nil {
		msg, path := typeProblem(err)
		return nil, &fieldErrors{fields: []fieldError{{path: path, msg: msg}}, cause: err}
	}
	if len(strict) > 0 {
		// As the API server words them: unknown field "spec.x".
		fe := &fieldErrors{cause: k8sruntime.NewStrictDecodingError(strict), capped: len(strict) >= 100}
		for _, err := range strict {
			f := fieldError{msg: err.Error()}
			var pe kjson.FieldError
			if errors.As(err, &pe) {
				f.path = pe.FieldPath()
			}
			fe.fields = append(fe.fields, f)
		}
		return nil, fe
	}
	return obj, nil
}
