package manifests

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// fastYAMLToJSON converts one YAML document to JSON, for the YAML that
// manifests are nearly always written in: block mappings and sequences,
// single-line plain, quoted and flow scalars and collections, and literal
// and simple folded block scalars. It is several times faster than
// sigs.k8s.io/yaml, whose YAML parser dominated the time `podguard check`
// took.
//
// It returns ok false for anything outside that subset, or that it is not
// sure of: anchors, aliases, tags, merge keys, multi-line plain or quoted
// scalars, tabs outside block scalars, keys that are not strings, duplicate
// keys, and all invalid YAML. The caller then uses yamlToJSON, which reads
// them as kubectl does (sigs.k8s.io/yaml's YAMLToJSON), finds the duplicate
// keys to warn about, and words the errors. When ok, the output is byte for
// byte what yaml.YAMLToJSON returns, with the same YAML 1.1 scalars (yes is
// true, 0777 is octal) and keys sorted, for a document in which no key is
// set twice; TestFastYAMLToJSON and FuzzFastYAMLToJSON hold it to that.
//
// It also returns the document's apiVersion and kind when both are strings,
// so that they need not be read from the JSON again.
func fastYAMLToJSON(data []byte) (out []byte, tm typeMeta, ok bool) {
	if !printable(data) {
		return nil, tm, false
	}
	p := fastParser{out: make([]byte, 0, len(data)+len(data)/4)}
	p.split(data)
	i, found := p.peek()
	if !found {
		return nil, tm, false
	}
	if l := p.lines[i]; l.indent == 0 && isMarker(l.text, sepDashes) {
		if isContent(l.text[3:]) {
			return nil, tm, false
		}
		p.i = i + 1
		if i, found = p.peek(); !found {
			return nil, tm, false
		}
	}
	l := p.lines[i]
	if l.tab || l.text[l.indent] == '%' {
		return nil, tm, false
	}
	// Only a mapping can be a Kubernetes object; anything else is left to
	// yaml, and then reported as not an object.
	if _, _, isKey, ok := p.key(l.text[l.indent:]); !ok || !isKey {
		return nil, tm, false
	}
	if !p.mapping(l.indent, nil) {
		return nil, tm, false
	}
	if _, found := p.peek(); found {
		return nil, tm, false
	}
	if !p.tmBad {
		tm = p.tm
	}
	return p.out, tm, true
}

// maxFastDepth bounds the nesting the fast path follows; deeper documents
// go to yaml, which has its own limits.
const maxFastDepth = 100

type fastParser struct {
	lines   []fastLine
	i       int // the next line to read
	out     []byte
	entries []entry // the keys of the mappings being read, innermost last
	scratch []byte
	depth   int
	// tm is the root mapping's apiVersion and kind, and tmBad is set if
	// either is not a string without escapes.
	tm    typeMeta
	tmBad bool
	// unterminated is set when the last line has no line break: a block
	// scalar that ends there has no final line break either, which the
	// fast path leaves to yaml.
	unterminated bool
}

type fastLine struct {
	text   []byte // without the line break
	indent int    // leading spaces
	blank  bool   // only spaces, or a comment
	tab    bool
}

// entry is a key of a mapping, and where its key and value are in out.
type entry struct {
	key        []byte
	start, end int
}

// printable reports whether yaml would accept every character of data,
// leaving out the ones that are line breaks in YAML 1.1 only (NEL, LS, PS)
// and byte order marks, which the line splitting would get wrong.
func printable(data []byte) bool {
	for i := 0; i < len(data); {
		c := data[i]
		if c < utf8.RuneSelf {
			switch {
			case c >= 0x20 && c < 0x7f, c == '\n', c == '\t':
			case c == '\r' && i+1 < len(data) && data[i+1] == '\n':
			default:
				return false
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return false
		case r == 0x85, r == 0x2028, r == 0x2029, r == 0xfeff:
			return false
		case r >= 0xa0 && r <= 0xd7ff, r >= 0xe000 && r <= 0xfffd, r >= 0x10000 && r <= 0x10ffff:
		default:
			return false
		}
		i += size
	}
	return true
}

func (p *fastParser) split(data []byte) {
	n := bytes.Count(data, []byte{'\n'}) + 1
	p.lines = make([]fastLine, 0, n)
	p.unterminated = len(data) > 0 && data[len(data)-1] != '\n'
	for len(data) > 0 {
		text := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			text, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		text = bytes.TrimSuffix(text, []byte{'\r'})
		l := fastLine{text: text, tab: bytes.IndexByte(text, '\t') >= 0}
		for l.indent < len(text) && text[l.indent] == ' ' {
			l.indent++
		}
		l.blank = l.indent == len(text) || text[l.indent] == '#'
		p.lines = append(p.lines, l)
	}
}

// peek returns the next line that is not blank or a comment.
func (p *fastParser) peek() (int, bool) {
	for i := p.i; i < len(p.lines); i++ {
		if !p.lines[i].blank {
			return i, true
		}
	}
	return 0, false
}

func isSeqEntry(text []byte) bool {
	return len(text) > 0 && text[0] == '-' && (len(text) == 1 || text[1] == ' ')
}

// block reads the block node whose first line is the next one, at indent n.
func (p *fastParser) block(n int) bool {
	i, _ := p.peek()
	l := p.lines[i]
	if l.tab {
		return false
	}
	if isSeqEntry(l.text[n:]) {
		return p.sequence(n)
	}
	if _, _, isKey, ok := p.key(l.text[n:]); !ok || !isKey {
		return false // a scalar on a line of its own
	}
	return p.mapping(n, nil)
}

// mapping reads a block mapping whose keys are at column n. When inline is
// not nil, the first entry is there (after "- " in a sequence) rather than
// on the next line.
func (p *fastParser) mapping(n int, inline []byte) bool {
	if p.depth++; p.depth > maxFastDepth {
		return false
	}
	defer func() { p.depth-- }()
	start, base := len(p.out), len(p.entries)
	p.out = append(p.out, '{')
	for first := true; ; first = false {
		text := inline
		if !first || inline == nil {
			i, found := p.peek()
			if !found || p.lines[i].indent < n {
				break
			}
			l := p.lines[i]
			if l.indent > n || l.tab {
				return false
			}
			text = l.text[n:]
			p.i = i + 1
		}
		key, rest, isKey, ok := p.key(text)
		if !ok || !isKey {
			return false
		}
		if !first {
			p.out = append(p.out, ',')
		}
		e := entry{key: key, start: len(p.out)}
		p.out = appendJSONString(p.out, key)
		p.out = append(p.out, ':')
		if !p.value(n, rest, true) {
			return false
		}
		e.end = len(p.out)
		p.entries = append(p.entries, e)
		if p.depth == 1 {
			p.noteTypeMeta(e)
		}
	}
	ok := p.sortEntries(start+1, base)
	p.out = append(p.out, '}')
	return ok
}

// noteTypeMeta records the root's apiVersion or kind, if e is either.
func (p *fastParser) noteTypeMeta(e entry) {
	var field *string
	switch string(e.key) {
	case "apiVersion":
		field = &p.tm.APIVersion
	case "kind":
		field = &p.tm.Kind
	default:
		return
	}
	v := p.out[e.start+len(e.key)+3 : e.end] // after "key":
	if len(v) < 2 || v[0] != '"' || bytes.IndexByte(v, '\\') >= 0 {
		p.tmBad = true
		return
	}
	*field = string(v[1 : len(v)-1])
}

// sortEntries puts the entries of the mapping that starts at out[from] in
// key order, as encoding/json writes maps, and fails on a duplicate key.
func (p *fastParser) sortEntries(from, base int) bool {
	entries := p.entries[base:]
	defer func() { p.entries = p.entries[:base] }()
	sorted := true
	for i := 1; i < len(entries); i++ {
		if bytes.Compare(entries[i-1].key, entries[i].key) >= 0 {
			sorted = false
			break
		}
	}
	if sorted {
		return true
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return bytes.Compare(a.key, b.key) })
	for i := 1; i < len(entries); i++ {
		if bytes.Equal(entries[i-1].key, entries[i].key) {
			return false
		}
	}
	p.scratch = append(p.scratch[:0], p.out[from:]...)
	p.out = p.out[:from]
	for i, e := range entries {
		if i > 0 {
			p.out = append(p.out, ',')
		}
		p.out = append(p.out, p.scratch[e.start-from:e.end-from]...)
	}
	return true
}

// sequence reads a block sequence whose "-" are at column n.
func (p *fastParser) sequence(n int) bool {
	if p.depth++; p.depth > maxFastDepth {
		return false
	}
	defer func() { p.depth-- }()
	p.out = append(p.out, '[')
	for first := true; ; first = false {
		i, found := p.peek()
		if !found || p.lines[i].indent < n {
			break
		}
		l := p.lines[i]
		if l.indent > n || l.tab {
			return false
		}
		if !isSeqEntry(l.text[n:]) {
			break // the next key of the mapping this sequence is in
		}
		p.i = i + 1
		if !first {
			p.out = append(p.out, ',')
		}
		rest := trimSpaces(l.text[n+1:])
		if isSeqEntry(rest) {
			return false // "- - a"
		}
		isKey, ok := false, true
		if len(rest) > 0 && rest[0] != '#' {
			_, _, isKey, ok = p.key(rest)
		}
		switch {
		case !ok:
			return false
		case isKey:
			// "- name: a": a mapping whose keys are at the column of
			// name.
			if !p.mapping(len(l.text)-len(rest), rest) {
				return false
			}
		default:
			if !p.value(n, rest, false) {
				return false
			}
		}
	}
	p.out = append(p.out, ']')
	return true
}

// value reads the value of a mapping entry, or a sequence entry that is not
// a mapping, whose collection is at column n: rest is what follows the key
// and its colon, or the "- ", on the same line.
func (p *fastParser) value(n int, rest []byte, inMapping bool) bool {
	rest = trimSpaces(rest)
	if len(rest) == 0 || rest[0] == '#' {
		i, found := p.peek()
		switch {
		case found && p.lines[i].indent > n:
			return p.block(p.lines[i].indent)
		case found && inMapping && p.lines[i].indent == n && isSeqEntry(p.lines[i].text[n:]):
			// key:
			// - a
			return p.sequence(n)
		}
		p.out = append(p.out, "null"...)
		return true
	}
	switch rest[0] {
	case '|', '>':
		return p.blockScalar(n, rest)
	case '"', '\'':
		s, after, ok := quoted(rest)
		if !ok || !isEnd(after) {
			return false
		}
		p.out = appendJSONString(p.out, s)
	case '[', '{':
		after, ok := p.flow(rest)
		if !ok || !isEnd(after) {
			return false
		}
	default:
		s, ok := plainBlock(rest)
		if !ok {
			return false
		}
		if p.out, ok = appendResolved(p.out, s); !ok {
			return false
		}
	}
	// A more indented line after a scalar would continue it.
	if i, found := p.peek(); found && p.lines[i].indent > n {
		return false
	}
	return true
}

// isEnd reports whether only white space and a comment follow a value.
func isEnd(after []byte) bool {
	t := trimSpaces(after)
	return len(t) == 0 || (t[0] == '#' && len(t) < len(after))
}

func trimSpaces(b []byte) []byte {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	return b
}

func trimTrailingSpaces(b []byte) []byte {
	for len(b) > 0 && b[len(b)-1] == ' ' {
		b = b[:len(b)-1]
	}
	return b
}

// key reads "key: rest". isKey is false if text is not a mapping entry;
// ok is false if it is not something the fast path reads.
func (p *fastParser) key(text []byte) (key, rest []byte, isKey, ok bool) {
	if len(text) == 0 {
		return nil, nil, false, false
	}
	switch c := text[0]; c {
	case '"', '\'':
		s, after, ok := quoted(text)
		if !ok || len(text)-len(after) > 1000 {
			return nil, nil, false, false
		}
		if len(after) > 0 && after[0] == ':' && (len(after) == 1 || after[1] == ' ') {
			return s, after[1:], true, true
		}
		return nil, nil, false, true
	case '[', '{', '|', '>', '#':
		return nil, nil, false, true
	case '&', '*', '!', '%', '@', '`', ',', ']', '}':
		return nil, nil, false, false
	case '-', '?', ':':
		if len(text) == 1 || text[1] == ' ' {
			return nil, nil, false, false
		}
	}
	for i := 0; i < len(text); i++ {
		switch text[i] {
		case ':':
			if i+1 == len(text) || text[i+1] == ' ' {
				key := trimTrailingSpaces(text[:i])
				// yaml allows 1024 characters up to the colon of a key.
				if len(key) == 0 || i > 1000 || resolvePlain(key) != kindString || string(key) == "<<" {
					return nil, nil, false, false
				}
				return key, text[i+1:], true, true
			}
		case '#':
			if text[i-1] == ' ' {
				return nil, nil, false, true // a scalar, and a comment
			}
		}
	}
	return nil, nil, false, true
}

// plainBlock reads a plain scalar in block context: the rest of the line up
// to a comment.
func plainBlock(text []byte) ([]byte, bool) {
	switch text[0] {
	case '&', '*', '!', '%', '@', '`', ',', '[', ']', '{', '}', '#', '|', '>', '\'', '"':
		return nil, false
	case '-', '?', ':':
		if len(text) == 1 || text[1] == ' ' {
			return nil, false
		}
	}
	for i := 1; i < len(text); i++ {
		switch text[i] {
		case '#':
			if text[i-1] == ' ' {
				text = text[:i]
				i = len(text)
			}
		case ':':
			if i+1 == len(text) || text[i+1] == ' ' {
				return nil, false // "a: b: c"
			}
		}
	}
	return trimTrailingSpaces(text), true
}

// quoted reads a single- or double-quoted scalar that ends on its line.
func quoted(text []byte) (s, after []byte, ok bool) {
	q := text[0]
	// Without escapes, the scalar is the text between the quotes.
	for i := 1; i < len(text); i++ {
		switch text[i] {
		case q:
			if q == '\'' && i+1 < len(text) && text[i+1] == '\'' {
				return quotedEscaped(text)
			}
			return text[1:i], text[i+1:], true
		case '\\':
			if q == '"' {
				return quotedEscaped(text)
			}
		}
	}
	return nil, nil, false
}

func quotedEscaped(text []byte) (s, after []byte, ok bool) {
	q := text[0]
	buf := make([]byte, 0, len(text))
	for i := 1; i < len(text); i++ {
		c := text[i]
		switch {
		case c == q && q == '\'':
			if i+1 < len(text) && text[i+1] == '\'' {
				buf = append(buf, '\'')
				i++
				continue
			}
			return buf, text[i+1:], true
		case c == q:
			return buf, text[i+1:], true
		case c == '\\' && q == '"':
			if i+1 == len(text) {
				return nil, nil, false // a line continuation
			}
			i++
			var width int
			switch text[i] {
			case '0':
				buf = append(buf, 0)
			case 'a':
				buf = append(buf, '\a')
			case 'b':
				buf = append(buf, '\b')
			case 't', '\t':
				buf = append(buf, '\t')
			case 'n':
				buf = append(buf, '\n')
			case 'v':
				buf = append(buf, '\v')
			case 'f':
				buf = append(buf, '\f')
			case 'r':
				buf = append(buf, '\r')
			case 'e':
				buf = append(buf, 0x1b)
			case ' ', '"', '\'', '\\':
				buf = append(buf, text[i])
			case 'N':
				buf = utf8.AppendRune(buf, 0x85)
			case '_':
				buf = utf8.AppendRune(buf, 0xa0)
			case 'L':
				buf = utf8.AppendRune(buf, 0x2028)
			case 'P':
				buf = utf8.AppendRune(buf, 0x2029)
			case 'x':
				width = 2
			case 'u':
				width = 4
			case 'U':
				width = 8
			default:
				return nil, nil, false
			}
			if width > 0 {
				if i+width >= len(text) {
					return nil, nil, false
				}
				v, err := strconv.ParseUint(string(text[i+1:i+1+width]), 16, 32)
				if err != nil || (v >= 0xd800 && v <= 0xdfff) || v > 0x10ffff {
					return nil, nil, false
				}
				buf = utf8.AppendRune(buf, rune(v))
				i += width
			}
		default:
			buf = append(buf, c)
		}
	}
	return nil, nil, false
}

// flow reads a flow sequence or mapping that ends on its line.
func (p *fastParser) flow(text []byte) ([]byte, bool) {
	if p.depth++; p.depth > maxFastDepth {
		return nil, false
	}
	defer func() { p.depth-- }()
	open, closing := text[0], byte(']')
	if open == '{' {
		closing = '}'
	}
	p.out = append(p.out, open)
	start, base := len(p.out), len(p.entries)
	defer func() { p.entries = p.entries[:base] }()
	text = trimSpaces(text[1:])
	if len(text) > 0 && text[0] == closing {
		p.out = append(p.out, closing)
		return text[1:], true
	}
	for first := true; ; first = false {
		if !first {
			p.out = append(p.out, ',')
		}
		var ok bool
		if open == '{' {
			var key []byte
			keyStart := text
			switch {
			case len(text) == 0:
				return nil, false
			case text[0] == '"' || text[0] == '\'':
				key, text, ok = quoted(text)
			default:
				key, text, ok = plainFlow(text)
				ok = ok && resolvePlain(key) == kindString && string(key) != "<<"
			}
			if !ok || len(keyStart)-len(text) > 1000 || len(text) < 2 || text[0] != ':' || text[1] != ' ' {
				return nil, false
			}
			text = trimSpaces(text[1:])
			e := entry{key: key, start: len(p.out)}
			p.out = appendJSONString(p.out, key)
			p.out = append(p.out, ':')
			if text, ok = p.flowNode(text); !ok {
				return nil, false
			}
			e.end = len(p.out)
			p.entries = append(p.entries, e)
		} else if text, ok = p.flowNode(text); !ok {
			return nil, false
		}
		text = trimSpaces(text)
		if len(text) == 0 {
			return nil, false
		}
		if text[0] == closing {
			if open == '{' && !p.sortEntries(start, base) {
				return nil, false
			}
			p.out = append(p.out, closing)
			return text[1:], true
		}
		if text[0] != ',' {
			return nil, false
		}
		text = trimSpaces(text[1:])
		if len(text) > 0 && text[0] == closing {
			return nil, false // a trailing comma
		}
	}
}

// flowNode reads a value inside a flow collection.
func (p *fastParser) flowNode(text []byte) ([]byte, bool) {
	if len(text) == 0 {
		return nil, false
	}
	switch text[0] {
	case '[', '{':
		return p.flow(text)
	case '"', '\'':
		s, after, ok := quoted(text)
		if !ok {
			return nil, false
		}
		p.out = appendJSONString(p.out, s)
		return after, true
	}
	s, after, ok := plainFlow(text)
	if !ok {
		return nil, false
	}
	if p.out, ok = appendResolved(p.out, s); !ok {
		return nil, false
	}
	return after, true
}

// plainFlow reads a plain scalar inside a flow collection.
func plainFlow(text []byte) (s, after []byte, ok bool) {
	switch text[0] {
	case '&', '*', '!', '%', '@', '`', ',', '[', ']', '{', '}', '#', '|', '>', '\'', '"', '-', '?', ':':
		// A leading - is fine in "-1", but not worth telling apart.
		if text[0] != '-' || len(text) == 1 || text[1] == ' ' {
			return nil, nil, false
		}
	}
	i := 0
	for ; i < len(text); i++ {
		switch text[i] {
		case ',', '[', ']', '{', '}':
			s = trimTrailingSpaces(text[:i])
			return s, text[i:], len(s) > 0
		case ':':
			if i+1 < len(text) && text[i+1] == ' ' {
				s = trimTrailingSpaces(text[:i])
				return s, text[i:], len(s) > 0
			}
			return nil, nil, false // "a:b": not worth telling apart
		case '?':
			return nil, nil, false // yaml ends a plain scalar there
		case '#':
			if text[i-1] == ' ' {
				return nil, nil, false
			}
		}
	}
	return nil, nil, false // the collection does not end on this line
}

// blockScalar reads a literal (|) or folded (>) block scalar whose header
// is on the current line and whose parent collection is at column n.
func (p *fastParser) blockScalar(n int, header []byte) bool {
	folded := header[0] == '>'
	chomp := byte(0)
	h := header[1:]
	if len(h) > 0 && (h[0] == '-' || h[0] == '+') {
		chomp, h = h[0], h[1:]
	}
	if !isEnd(h) {
		return false // an indentation indicator, or something else
	}
	// The indentation is that of the first line with content.
	i, m, leading := p.i, 0, 0
	for ; i < len(p.lines); i++ {
		t := p.lines[i].text
		sp := p.lines[i].indent
		if sp < len(t) {
			if t[sp] == '\t' {
				return false // yaml: a tab where indentation is expected
			}
			m = sp
			break
		}
		leading = max(leading, sp)
	}
	if i == len(p.lines) || m <= n || leading > m {
		return false
	}
	var lines [][]byte // nil for an empty line
	for i = p.i; i < len(p.lines); i++ {
		l := p.lines[i]
		if l.indent == len(l.text) { // only spaces
			if l.indent > m {
				return false
			}
			lines = append(lines, nil)
			continue
		}
		if l.indent < m {
			break
		}
		if l.indent == m && l.text[m] == '\t' {
			return false // not worth telling apart from indentation
		}
		lines = append(lines, l.text[m:])
	}
	if i == len(p.lines) && p.unterminated {
		return false
	}
	p.i = i
	trailing := 0
	for trailing < len(lines) && lines[len(lines)-1-trailing] == nil {
		trailing++
	}
	body := lines[:len(lines)-trailing]
	var s []byte
	if folded {
		if body[0] == nil {
			return false
		}
		breaks := 0
		for j, l := range body {
			switch {
			case l == nil:
				breaks++
				continue
			case l[0] == ' ' || l[0] == '\t':
				return false // more indented lines keep their breaks
			case j > 0 && breaks == 0:
				s = append(s, ' ')
			}
			for ; breaks > 0; breaks-- {
				s = append(s, '\n')
			}
			s = append(s, l...)
		}
	} else {
		for j, l := range body {
			if j > 0 {
				s = append(s, '\n')
			}
			s = append(s, l...)
		}
	}
	switch chomp {
	case 0:
		s = append(s, '\n')
	case '+':
		for range trailing + 1 {
			s = append(s, '\n')
		}
	}
	p.out = appendJSONString(p.out, s)
	return true
}

// The kinds of value a plain scalar resolves to.
const (
	kindString = iota
	kindNull
	kindBool
	kindInt
	kindFloat
	kindOther // .inf, .nan, the merge key: the fast path stops
)

// resolvePlain is what yaml.v2 makes of a plain scalar (its resolve
// function): YAML 1.1, where yes, on and y are true, 0777 is octal and
// 1_000 is 1000.
func resolvePlain(s []byte) int {
	k, _ := resolvePlainValue(s)
	return k
}

var yamlStyleFloat = regexp.MustCompile(`^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`)

// resolvePlainValue returns the kind of s and, for numbers and booleans,
// its JSON.
func resolvePlainValue(s []byte) (int, []byte) {
	if len(s) == 0 {
		return kindNull, nil
	}
	switch c := s[0]; {
	case c == '+' || c == '-' || (c >= '0' && c <= '9'):
		return resolveNumber(string(s))
	case c == '.':
		switch string(s) {
		case ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF":
			return kindOther, nil
		}
		if f, err := strconv.ParseFloat(string(s), 64); err == nil {
			return floatJSON(f)
		}
	case c == 'y' || c == 'Y' || c == 'n' || c == 'N' || c == 't' || c == 'T' || c == 'f' || c == 'F' || c == 'o' || c == 'O' || c == '~':
		switch string(s) {
		case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON":
			return kindBool, []byte("true")
		case "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF":
			return kindBool, []byte("false")
		case "~", "null", "Null", "NULL":
			return kindNull, nil
		}
	case c == '<':
		if string(s) == "<<" {
			return kindOther, nil
		}
	}
	return kindString, nil
}

func resolveNumber(s string) (int, []byte) {
	switch s {
	case "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF":
		return kindOther, nil
	}
	if isTimestamp(s) {
		// yaml.v2 keeps these as strings when decoding into interface{}.
		return kindString, nil
	}
	plain := strings.ReplaceAll(s, "_", "")
	if v, err := strconv.ParseInt(plain, 0, 64); err == nil {
		return kindInt, strconv.AppendInt(nil, v, 10)
	}
	if v, err := strconv.ParseUint(plain, 0, 64); err == nil {
		return kindInt, strconv.AppendUint(nil, v, 10)
	}
	if yamlStyleFloat.MatchString(plain) {
		if f, err := strconv.ParseFloat(plain, 64); err == nil {
			return floatJSON(f)
		}
	}
	if rest, ok := strings.CutPrefix(plain, "0b"); ok {
		if v, err := strconv.ParseInt(rest, 2, 64); err == nil {
			return kindInt, strconv.AppendInt(nil, v, 10)
		}
		if v, err := strconv.ParseUint(rest, 2, 64); err == nil {
			return kindInt, strconv.AppendUint(nil, v, 10)
		}
	} else if rest, ok := strings.CutPrefix(plain, "-0b"); ok {
		if v, err := strconv.ParseInt("-"+rest, 2, 64); err == nil {
			return kindInt, strconv.AppendInt(nil, v, 10)
		}
	}
	return kindString, nil
}

func floatJSON(f float64) (int, []byte) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return kindOther, nil
	}
	b, err := json.Marshal(f)
	if err != nil {
		return kindOther, nil
	}
	return kindFloat, b
}

// isTimestamp is yaml.v2's parseTimestamp.
func isTimestamp(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		if c := s[i]; c < '0' || c > '9' {
			break
		}
	}
	if i != 4 || i == len(s) || s[i] != '-' {
		return false
	}
	for _, format := range []string{"2006-1-2T15:4:5.999999999Z07:00", "2006-1-2t15:4:5.999999999Z07:00", "2006-1-2 15:4:5.999999999", "2006-1-2"} {
		if _, err := time.Parse(format, s); err == nil {
			return true
		}
	}
	return false
}

// appendResolved appends the JSON of a plain scalar.
func appendResolved(out, s []byte) ([]byte, bool) {
	switch kind, v := resolvePlainValue(s); kind {
	case kindString:
		return appendJSONString(out, s), true
	case kindNull:
		return append(out, "null"...), true
	case kindBool, kindInt, kindFloat:
		return append(out, v...), true
	}
	return out, false
}

// appendJSONString appends s as encoding/json writes it: quoted, with <, >
// and & escaped too.
func appendJSONString(out, s []byte) []byte {
	for _, c := range s {
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(string(s)) // a string always marshals
			return append(out, b...)
		}
	}
	out = append(out, '"')
	out = append(out, s...)
	return append(out, '"')
}
