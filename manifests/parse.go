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
	"unicode"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/scheme"
	kjson "sigs.k8s.io/json"
)

// Document is one Kubernetes object read from the input.
type Document struct {
	// File is the path as found (walked paths joined with the folder
	// given), or "-" for stdin.
	File string
	// Index is the 0-based index of the YAML or JSON document within the
	// file. Empty documents (only comments, or nothing, between separators)
	// are not counted; a document that is only a null is counted, and
	// skipped, as kubectl skips it.
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

	// src is the document's text as read (YAML or JSON), base the file's
	// line number of its first line, and prefix the object's path in it
	// ("items[2]" for a List item): what FieldLines reads.
	src    []byte
	base   int
	prefix string
}

// FieldLines returns, for each field path of the object (as policies write
// them: "spec.template.spec.containers[0].envFrom[0]"), the 1-based line of
// File where that field is written, or where the deepest part of the path
// that is written is (a field that a mutation would add is not). A path
// that cannot be located at all, or a document not read from text, gets
// Line. The text is parsed again, once per call: call it for the documents
// with something to report.
func (d *Document) FieldLines(paths ...string) []int {
	out := make([]int, len(paths))
	full := make([]string, len(paths))
	for i, p := range paths {
		out[i] = d.Line
		full[i] = joinPath(d.prefix, p)
	}
	if d.src == nil || len(paths) == 0 {
		return out
	}
	for i, n := range locate(d.src, full...) {
		if n > 0 {
			out[i] = d.base + n - 1
		}
	}
	return out
}

var (
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
// JSON object, or a stream of JSON objects. name is used in the Documents,
// warnings and errors. It returns every document it could decode, and one
// *Error per document (or List item) it could not; a bad document does not
// stop the others. Empty input returns nothing.
//
// It reads the bytes as `kubectl create -f` and `kubectl apply -f` do
// (k8s.io/cli-runtime's FileVisitor and StreamVisitor, and
// k8s.io/apimachinery's YAMLOrJSONDecoder): what kubectl accepts is read,
// with the same result, and what it rejects is an error. Warnings are
// things kubectl reads without a word that were probably not meant, such
// as a duplicate key, whose last value wins.
func Parse(name string, data []byte) ([]Document, []Warning, []error) {
	if int64(len(data)) > maxFileSize {
		return nil, nil, []error{&Error{File: name, Err: tooLarge()}}
	}
	data, warns := asKubectlReads(name, data)
	var (
		chunks []chunk
		errs   []error
	)
	if isJSON(data) {
		var (
			from int
			err  *Error
		)
		chunks, from, err = splitJSON(name, data)
		if from >= 0 {
			// Not a JSON stream after all: kubectl reads the rest as YAML.
			more, sepErrs, ws := splitYAML(name, data[from:], 1+bytes.Count(data[:from], []byte{'\n'}), len(chunks))
			// If its first document is not YAML either, the JSON error is
			// the one kubectl reports. If there is none (only comments
			// follow the JSON), kubectl has nothing to complain about.
			if len(more) > 0 {
				more[0].jsonErr = err
			}
			chunks = append(chunks, more...)
			errs = append(errs, sepErrs...)
			warns = append(warns, ws...)
		} else if err != nil {
			errs = append(errs, err)
		}
	} else {
		var (
			sepErrs []error
			ws      []Warning
		)
		chunks, sepErrs, ws = splitYAML(name, data, 1, 0)
		errs = append(errs, sepErrs...)
		warns = append(warns, ws...)
	}
	docs, docWarns, decodeErrs := decodeChunks(name, chunks)
	warns = append(warns, docWarns...)
	slices.SortStableFunc(warns, func(a, b Warning) int { return cmp.Compare(a.Line, b.Line) })
	// The JSON syntax error, if any, is after the last document read.
	return docs, warns, append(decodeErrs, errs...)
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
	// jsonErr is set on the first YAML document of a file that starts as
	// JSON and then is not: if that document is not YAML either, the JSON
	// error is the one to report, as kubectl does.
	jsonErr *Error
	// end is the offset just after a JSON document.
	end int
}

// lastLine is the file's line number of the document's last line.
func (c *chunk) lastLine() int {
	n := bytes.Count(c.data, []byte{'\n'})
	if len(c.data) > 0 && c.data[len(c.data)-1] != '\n' {
		n++
	}
	return c.base + max(n, 1) - 1
}

// jsonSniffLen is how far into the input kubectl looks for the { that
// makes it JSON (resource.StreamVisitor's buffer).
const jsonSniffLen = 4096

// isJSON reports whether kubectl reads the input as JSON: its first
// character, after white space (unicode.IsSpace) within the first 4096
// bytes, opens an object. A stream of several JSON objects is not YAML, so
// it must be told apart before splitting.
func isJSON(data []byte) bool {
	head := bytes.TrimLeftFunc(data[:min(len(data), jsonSniffLen)], unicode.IsSpace)
	return len(head) > 0 && head[0] == '{'
}

// splitYAML cuts a YAML stream into its documents, in one pass, as
// kubectl's YAMLReader does: a document ends at a line that starts with
// "---". Only white space or a comment may follow the dashes on that line;
// anything else ("--- {a: 1}", "----") is an error, as in kubectl, and the
// line is then taken as a separator all the same so that the documents
// after it are still read. Per the YAML spec a separator cannot occur
// inside a document, even in a block scalar, which is indented.
//
// base is the line number of data's first line, and index the number of
// documents before it. Documents with nothing but comments and blank lines
// are dropped.
func splitYAML(name string, data []byte, base, index int) ([]chunk, []error, []Warning) {
	var (
		chunks []chunk
		errs   []error
		warns  []Warning
	)
	// The current document: its offset, first content line, first
	// directive line, and the line of a "..." marker in it.
	start, first, directive, end := 0, 0, 0, 0
	lineNo := base - 1
	docBase := base
	flush := func(stop int) {
		line := first
		if line == 0 {
			// Directives alone are not a document: yaml rejects them, and
			// so does kubectl.
			line = directive
		}
		if line != 0 {
			chunks = append(chunks, chunk{index: index + len(chunks), line: line, base: docBase, data: kubectlLines(data[start:stop])})
		}
	}
	for pos := 0; pos < len(data); {
		eol, next := len(data), len(data)
		if i := bytes.IndexByte(data[pos:], '\n'); i >= 0 {
			eol, next = pos+i, pos+i+1
		}
		lineNo++
		line := bytes.TrimSuffix(data[pos:eol], []byte{'\r'})
		switch {
		case bytes.HasPrefix(line, sepDashes):
			if rest := bytes.TrimSpace(line[3:]); len(rest) > 0 && rest[0] != '#' {
				errs = append(errs, &Error{File: name, Line: lineNo, Err: badSeparator(line)})
			}
			flush(pos)
			start, docBase, first, directive, end = next, lineNo+1, 0, 0, 0
		case first == 0 && isContent(line):
			// A line starting with % before any content is a directive
			// (%YAML 1.2), not content.
			if line[0] != '%' {
				first = lineNo
			} else if directive == 0 {
				directive = lineNo
			}
		case first != 0 && end == 0 && isMarker(line, endMarker):
			end = lineNo
		case end > 0 && isContent(line) && line[0] != '%':
			// yaml reads a document's first YAML document only. A
			// directive for the next one is lost, but harmless.
			warns = append(warns, Warning{File: name, Line: end, Msg: fmt.Sprintf(
				"what follows the document end marker \"...\" (from line %d on) is ignored, as kubectl ignores it: start a new document with \"---\" instead", lineNo)})
			end = -1
		}
		pos = next
	}
	flush(len(data))
	return chunks, errs, warns
}

// badSeparator is the error for a line that starts with "---" but is not a
// document separator.
func badSeparator(line []byte) error {
	text := string(line)
	if utf8.RuneCountInString(text) > 40 {
		text = string([]rune(text)[:40]) + "..."
	}
	return &problem{msg: fmt.Sprintf("invalid document separator %q: only white space or a comment may follow \"---\" on its line (kubectl rejects it too)", text), cause: errBadSeparator}
}

var errBadSeparator = errors.New("invalid document separator")

// kubectlLines returns a document's text as kubectl's LineReader hands it
// to yaml: every line ends in "\n", without the "\r" of a CRLF. The text
// is returned as it is when it already is so.
func kubectlLines(doc []byte) []byte {
	if len(doc) > 0 && doc[len(doc)-1] == '\n' && bytes.IndexByte(doc, '\r') < 0 {
		return doc
	}
	out := make([]byte, 0, len(doc)+1)
	for len(doc) > 0 {
		line := doc
		if i := bytes.IndexByte(doc, '\n'); i >= 0 {
			line, doc = doc[:i], doc[i+1:]
		} else {
			doc = nil
		}
		out = append(append(out, bytes.TrimSuffix(line, []byte{'\r'})...), '\n')
	}
	return out
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

// splitJSON cuts a stream of JSON values into documents. On a syntax error
// after more than one value, the stream ends there, as there is no telling
// where the next value starts. After one value or none, kubectl takes the
// input for YAML from there on (a JSON object, then "---" and YAML), and
// so does splitJSON: from is the offset where the YAML starts, or -1.
func splitJSON(name string, data []byte) (chunks []chunk, from int, _ *Error) {
	lines := lineCounter{data: data, line: 1}
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			return chunks, -1, nil
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
			jsonErr := &Error{File: name, Line: lines.at(int(offset)), Err: inDocument(ref, &problem{msg: "invalid JSON: " + msg, cause: err})}
			if len(chunks) > 1 {
				return chunks, -1, jsonErr
			}
			from := 0
			if len(chunks) == 1 {
				from = chunks[0].end
			}
			if from, ok := skipSpaceLine(data, from); ok {
				return chunks, from, jsonErr
			}
			return chunks, -1, jsonErr
		}
		end := int(dec.InputOffset())
		line := lines.at(end - len(raw))
		chunks = append(chunks, chunk{index: ref.index, line: line, base: line, data: raw, json: true, end: end})
	}
}

// skipSpaceLine skips white space from data[from], up to and including the
// first line break, as kubectl does before it reads YAML after JSON. ok is
// false where kubectl gives up: at the end of the input, or at U+FFFD.
func skipSpaceLine(data []byte, from int) (int, bool) {
	for from < len(data) {
		r, size := utf8.DecodeRune(data[from:])
		if r == utf8.RuneError {
			return 0, false
		}
		if !unicode.IsSpace(r) {
			return from, true
		}
		from += size
		if r == '\n' {
			return from, true
		}
	}
	return 0, false
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
	docs  []Document
	warns []Warning
	errs  []error
}

// decodeChunks decodes the documents, on every core when there are many,
// and returns them in input order.
func decodeChunks(name string, chunks []chunk) ([]Document, []Warning, []error) {
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
	var (
		warns []Warning
		errs  []error
	)
	for _, r := range results {
		docs = append(docs, r.docs...)
		warns = append(warns, r.warns...)
		errs = append(errs, r.errs...)
	}
	return docs, warns, errs
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
	var (
		tm   typeMeta // when the fast path read them
		dups []duplicate
	)
	if !c.json {
		var (
			ok  bool
			err error
		)
		if js, tm, ok = fastYAMLToJSON(c.data); !ok {
			js, dups, err = yamlToJSON(c.data)
		}
		if err != nil {
			if c.jsonErr != nil {
				return chunkResult{errs: []error{c.jsonErr}}
			}
			msg, n := yamlProblem(err)
			line := c.line
			if n > 0 {
				// yaml may name the line after the last, at the end of
				// the input.
				line = min(c.base+n-1, c.lastLine())
			} else if r, at, ok := firstUnprintable(c.data); ok {
				// yaml's reader names no line.
				line = c.base + at - 1
				msg += fmt.Sprintf(" (%U)", r)
				if r == 0 {
					msg += "; is this a binary file?"
				}
			}
			return chunkResult{errs: []error{&Error{File: name, Line: line, Err: inDocument(ref, &problem{msg: msg, cause: err})}}}
		}
		if string(js) == "null" {
			// A document of nothing but a null, or a "...": kubectl
			// skips it.
			return chunkResult{}
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
		obj, raw, jsonDups, err := decodeObject(tm, js, &ref)
		res.warns = c.duplicates(name, ref, "", dups, jsonDups)
		if err != nil {
			res.errs = []error{c.fail(name, ref, "", err)}
			return res
		}
		res.docs = []Document{{File: name, Index: c.index, Line: c.line, Item: -1, Object: obj, Raw: raw, src: c.data, base: c.base}}
		return res
	}
	// Each bad item is reported, and does not hide the others: a List
	// gathers objects from many places.
	res.warns = c.duplicates(name, ref, "", dups, nil)
	res.docs = make([]Document, 0, len(items))
	for i, item := range items {
		ref := docRef{index: c.index, item: i}
		prefix := fmt.Sprintf("items[%d]", i)
		obj, raw, jsonDups, err := decodeItem(tm, item, &ref)
		res.warns = append(res.warns, c.duplicates(name, ref, prefix, nil, jsonDups)...)
		if err != nil {
			res.errs = append(res.errs, c.fail(name, ref, prefix, err))
			continue
		}
		res.docs = append(res.docs, Document{File: name, Index: c.index, Line: c.line, Item: i, Object: obj, Raw: raw, src: c.data, base: c.base, prefix: prefix})
	}
	return res
}

// duplicates turns the duplicate keys found in a document's YAML, and the
// duplicate fields found in its JSON (under prefix, for a List item), into
// warnings on their lines.
func (c *chunk) duplicates(name string, ref docRef, prefix string, yamlDups []duplicate, jsonDups []string) []Warning {
	if len(yamlDups) == 0 && len(jsonDups) == 0 {
		return nil
	}
	warns := make([]Warning, 0, len(yamlDups)+len(jsonDups))
	for _, d := range yamlDups {
		msg := fmt.Sprintf("duplicate key %q", d.path)
		if d.first > 0 {
			msg += fmt.Sprintf(" (first on line %d)", c.base+d.first-1)
		}
		msg += ": the last value is used, as kubectl uses it"
		warns = append(warns, Warning{File: name, Line: c.base + d.line - 1, Msg: inDocument(ref, errors.New(msg)).Error()})
	}
	if len(jsonDups) > 0 {
		paths := make([]string, len(jsonDups))
		for i, p := range jsonDups {
			paths[i] = joinPath(prefix, p)
		}
		// The line of the last occurrence, the one that wins: as the YAML
		// duplicate warning does.
		lines := locate(c.data, paths...)
		for i, p := range jsonDups {
			line := c.line
			if lines[i] > 0 {
				line = c.base + lines[i] - 1
			}
			msg := fmt.Sprintf("duplicate field %q: the last value is used, as kubectl uses it", p)
			warns = append(warns, Warning{File: name, Line: line, Msg: inDocument(ref, errors.New(msg)).Error()})
		}
	}
	return warns
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
		// The line of the last occurrence, the one that wins: as the YAML
		// duplicate warning does.
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
func decodeItem(list typeMeta, item []byte, ref *docRef) (k8sruntime.Object, []byte, []string, error) {
	if jsonKind(item) == "an object" && list.Kind != "List" {
		var tm typeMeta
		if err := kjson.UnmarshalCaseSensitivePreserveInts(item, &tm); err == nil {
			item = withTypeMeta(item, tm, typeMeta{APIVersion: list.APIVersion, Kind: list.Kind[:len(list.Kind)-4]})
		}
	}
	tm, err := typeMetaOf(item)
	if err != nil {
		return nil, nil, nil, err
	}
	return decodeObject(tm, item, ref)
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
// for its kind, strictly: an unknown field, or a value of the wrong type, is
// an error, as the API server's strict field validation makes it. Kinds the
// scheme does not know (CRDs) decode into Unstructured.
//
// A field given twice is not an error: kubectl decodes the JSON into a map,
// where the last value replaces the first whole, and sends that. Such
// documents are decoded the same way, and the duplicate fields returned,
// for warnings. raw is the object's JSON, without them.
func decodeObject(tm typeMeta, js []byte, ref *docRef) (obj k8sruntime.Object, raw []byte, dups []string, err error) {
	ref.kind = tm.Kind
	gv, err := schema.ParseGroupVersion(tm.APIVersion)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("invalid apiVersion %q", tm.APIVersion)
	}
	obj, strict, err := decodeStrict(gv.WithKind(tm.Kind), js, ref)
	if err != nil {
		return nil, nil, nil, err
	}
	unknown := strict[:0:0]
	for _, e := range strict {
		if strings.HasPrefix(e.Error(), "duplicate field ") {
			var pe kjson.FieldError
			if errors.As(e, &pe) {
				dups = append(dups, pe.FieldPath())
			}
			continue
		}
		unknown = append(unknown, e)
	}
	raw = js
	if len(dups) > 0 {
		// As kubectl: the last value of a key replaces the others whole,
		// where a struct would merge them.
		var m any
		if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &m); err != nil {
			return nil, nil, nil, err
		}
		if raw, err = json.Marshal(m); err != nil {
			return nil, nil, nil, err
		}
		if obj, strict, err = decodeStrict(gv.WithKind(tm.Kind), raw, ref); err != nil {
			return nil, nil, nil, err
		}
		unknown = strict
	}
	if len(unknown) > 0 {
		// As the API server words them: unknown field "spec.x".
		fe := &fieldErrors{cause: k8sruntime.NewStrictDecodingError(unknown), capped: len(strict) >= 100}
		for _, err := range unknown {
			f := fieldError{msg: err.Error()}
			var pe kjson.FieldError
			if errors.As(err, &pe) {
				f.path = pe.FieldPath()
			}
			fe.fields = append(fe.fields, f)
		}
		return nil, nil, dups, fe
	}
	return obj, raw, dups, nil
}

// decodeStrict decodes js into a new object of kind gvk (Unstructured for
// kinds client-go does not know), and returns the unknown and duplicate
// fields.
func decodeStrict(gvk schema.GroupVersionKind, js []byte, ref *docRef) (k8sruntime.Object, []error, error) {
	obj, err := scheme.Scheme.New(gvk)
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
		return nil, nil, &fieldErrors{fields: []fieldError{{path: path, msg: msg}}, cause: err}
	}
	return obj, strict, nil
}
