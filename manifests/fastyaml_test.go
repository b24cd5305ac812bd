package manifests

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// checkFastYAML fails if the fast path accepts data but does not produce
// exactly what yaml.YAMLToJSON does (kubectl's conversion, and the slow
// path's), or accepts a document with a key set twice, which the slow path
// must see to warn about. It returns whether the fast path accepted.
func checkFastYAML(t testing.TB, data []byte) bool {
	t.Helper()
	got, _, ok := fastYAMLToJSON(data)
	if !ok {
		return false
	}
	want, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("fast path accepted YAML that yaml rejects (%v):\n%s\nfast: %s", err, data, got)
	}
	if _, err := yaml.YAMLToJSONStrict(data); err != nil {
		t.Fatalf("fast path accepted YAML with a duplicate key (%v):\n%s\nfast: %s", err, data, got)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("fast path differs from yaml for:\n%s\nfast: %s\nyaml: %s", data, got, want)
	}
	return true
}

// fastYAMLCases are documents for the fast path. fast says whether it must
// take them (the common forms of manifests); all must give what yaml gives.
var fastYAMLCases = []struct {
	name string
	yaml string
	fast bool
}{
	{"reads a flat mapping", "apiVersion: v1\nkind: ConfigMap\n", true},
	{"skips a leading separator and comments", "---\n# Source: a\n\napiVersion: v1 # trailing\nkind: ConfigMap\n", true},
	{"skips a separator with a comment", "--- # doc\nkind: ConfigMap\n", true},
	{"sorts keys as encoding/json does", "b: 1\na: 2\nB: 3\n_: 4\n", true},
	{"reads nested mappings", "a:\n  b:\n    c: d\n  e: f\ng: h\n", true},
	{"reads a sequence at the key's indentation", "a:\n- x\n- y\nb: z\n", true},
	{"reads an indented sequence", "a:\n  - x\n  - y\nb: z\n", true},
	{"reads a sequence of mappings", "c:\n- name: a\n  image: b\n  ports:\n  - containerPort: 80\n    name: http\n- name: c\n", true},
	{"reads extra spaces after a dash", "c:\n-   name: a\n    image: b\n", true},
	{"reads a dash with the mapping below", "c:\n-\n  name: a\n", true},
	{"reads empty values as null", "a:\nb: ~\nc: null\nd: Null\ne:\n  # comment\nf: 1\n", true},
	{"reads an empty sequence entry as null", "a:\n-\n- x\n", true},
	{"resolves YAML 1.1 booleans", "a: yes\nb: No\nc: on\nd: OFF\ne: y\nf: n\ng: true\nh: False\n", true},
	{"resolves integers", "a: 0\nb: -1\nc: +5\nd: 0777\ne: 0x1F\nf: 1_000\ng: 0b101\nh: -0b11\ni: 9223372036854775807\nj: 18446744073709551615\nk: 99999999999999999999\n", true},
	{"resolves floats", "a: 1.5\nb: .5\nc: 1e3\nd: -1.0\ne: 1e21\nf: 1e-7\ng: 1.\nh: 6.02e+23\ni: 1e999\n", true},
	{"keeps strings that look almost like numbers", "a: 100m\nb: 128Mi\nc: 1.2.3\nd: 10.0.0.1\ne: 1:2\nf: 0x\ng: 1e\nh: +\ni: -x\nj: .x\nk: 12:30:00\n", true},
	{"keeps timestamps as strings", "a: 2001-12-14\nb: 2001-12-14T21:59:43.10Z\nc: 2001-12-14 21:59:43.10\n", true},
	{"stops at special floats", "a: .inf\n", false},
	{"stops at nan", "a: .NaN\n", false},
	{"stops at negative infinity", "a: -.inf\n", false},
	{"reads quoted scalars", "a: \"x: y\"\nb: 'it''s'\nc: \"\"\nd: ''\ne: \"a\\tb\\n\\\"c\\\\ \\x41\\u00e9\\U0001F600\"\nf: '#not a comment'\n", true},
	{"reads quoted keys", "\"a b\": 1\n'c': 2\n\"3\": x\n", true},
	{"escapes HTML characters as encoding/json does", "a: <b> & c\nb: \"\\u2028\"\nc: é\n", true},
	{"reads flow collections", "a: [x, y, 1, true, \"q\", 'r']\nb: {cpu: 100m, memory: 128Mi}\nc: []\nd: {}\ne: [{a: 1}, [2, 3]]\nf: {b: 1, a: 2}\n", true},
	{"reads flow collections with comments after them", "a: [x] # c\nb: {c: d}   # c\n", true},
	{"reads literal block scalars", "a: |\n  line 1\n    indented\n\n  line 3\nb: x\n", true},
	{"reads stripped and kept block scalars", "a: |-\n  x\n  y\n\nb: |+\n  x\n\n\nc: 1\n", true},
	{"reads a literal block scalar with a comment in it", "a: |\n  # not a comment\n  x\n# a comment\nb: 1\n", true},
	{"reads folded block scalars", "a: >\n  one\n  two\n\n  three\nb: >-\n  x\n  y\n", true},
	{"reads a block scalar in a sequence", "a:\n- |\n  x\n- y\n", true},
	{"reads a block scalar in a mapping in a sequence", "a:\n- b: |\n    x\n  c: 1\n", true},
	{"reads a sequence under a key of a mapping in a sequence", "a:\n- b:\n  - x\n  c: 1\n", true},
	{"reads a folded block scalar with trailing spaces", "a: >\n  x  \n  y\n", true},
	{"reads values that look like document markers", "a: ---\nb: ...\nc: [--x]\n", true},
	{"reads a block scalar with leading empty lines", "a: |\n\n  x\n", true},
	{"reads a block scalar with tabs in its content", "a: |\n  x\ty\n   \tz\n", true},
	{"stops at a tab where a block scalar's indentation ends", "a: |\n  x\n  \tz\n", false},
	{"stops at a tab in a block scalar's indentation", "a: |\n \tx\n", false},
	{"reads a block scalar at the end of the input", "a: |\n  x\n", true},
	{"reads CRLF line endings", "a: 1\r\nb:\r\n- |\r\n  x\r\n  y\r\n", true},
	{"reads keys with odd characters", "app.kubernetes.io/name: x\nhttp://a: b\n-x: 1\n?y: 2\n", true},
	{"reads values with colons and hashes inside", "a: http://x/y#z\nb: a:b\nc: x#y\n", true},
	{"reads an indented root", "  a: 1\n  b: 2\n", true},
	{"reads unicode", "a: 日本語\nb: \"😀\"\nkey😀: x\n", true},
	{"reads numeric-looking keys only as strings", "\"1\": a\n", true},

	{"stops at anchors and aliases", "a: &x 1\nb: *x\n", false},
	{"stops at merge keys", "a: {x: 1}\n<<: {y: 2}\n", false},
	{"stops at tags", "a: !!str 1\n", false},
	{"stops at a duplicate key", "a: 1\na: 2\n", false},
	{"stops at a duplicate quoted key", "a: 1\n\"a\": 2\n", false},
	{"stops at a duplicate key in a flow mapping", "a: {x: 1, x: 2}\n", false},
	{"stops at a multi-line plain scalar", "a: one\n  two\n", false},
	{"stops at a multi-line quoted scalar", "a: \"one\n  two\"\n", false},
	{"stops at a multi-line flow collection", "a: [x,\n  y]\n", false},
	{"stops at a non-string key", "1: a\n", false},
	{"stops at a boolean key", "on: push\n", false},
	{"stops at a null key", "~: a\n", false},
	{"stops at a tab", "a:\tb\n", false},
	{"stops at a tab in indentation", "a:\n\tb: c\n", false},
	{"stops at a root sequence", "- a\n", false},
	{"stops at a root scalar", "a\n", false},
	{"stops at a nested compact sequence", "a:\n- - x\n", false},
	{"stops at a mapping in a value", "a: b: c\n", false},
	{"stops at a trailing colon", "a: b:\n", false},
	{"stops at a bad indentation", "a:\n    b: 1\n  c: 2\n", false},
	{"stops at a sequence in a mapping", "a: 1\n- b\n", false},
	{"stops at an unknown escape", "a: \"\\/\"\n", false},
	{"stops at a surrogate escape", "a: \"\\ud800\"\n", false},
	{"stops at a block scalar indentation indicator", "a: |2\n   x\n", false},
	{"stops at a more indented folded line", "a: >\n  x\n    y\n", false},
	{"stops at a control character", "a: \"\x01\"\n", false},
	{"stops at a document end marker", "a: 1\n...\n", false},
	{"stops at a directive", "%YAML 1.1\n---\na: 1\n", false},
	{"stops at content after the separator", "--- {a: 1}\n", false},
	{"stops at a complex key", "? a\n: b\n", false},
	{"stops at a flow scalar with a colon", "a: [http://x]\n", false},
	{"stops at a trailing comma", "a: [x, ]\n", false},
	{"stops at an unclosed quote", "a: 'x\n", false},
	{"stops at a plain scalar continued on a more indented line", "a:\n  x\n", false},
	{"stops at a long key", strings.Repeat("k", 1001) + ": v\n", false},
	{"stops at a long key with spaces before its colon", strings.Repeat("k", 1000) + strings.Repeat(" ", 30) + ": v\n", false},
	{"stops at a long quoted key", "'" + strings.Repeat("k", 1000) + "': v\n", false},
	{"stops at a long key in a flow mapping", "a: {" + strings.Repeat("k", 1100) + ": v}\n", false},
	{"reads a key just under yaml's limit", strings.Repeat("k", 1000) + ": v\n", true},
	{"stops at a bad block scalar indentation", "a: |\n  x\n y: 1\n", false},
	{"stops at an empty block scalar", "a: |\nb: 1\n", false},
}

func TestFastYAMLToJSON(t *testing.T) {
	for _, tc := range fastYAMLCases {
		t.Run(tc.name, func(t *testing.T) {
			fast := checkFastYAML(t, []byte(tc.yaml))
			if tc.fast && !fast {
				t.Errorf("the fast path did not take:\n%s", tc.yaml)
			}
			if !tc.fast && fast {
				t.Errorf("the fast path took, but should not:\n%s", tc.yaml)
			}
		})
	}
}

// FuzzFastYAMLToJSON holds the fast path to yaml's output on any input it
// accepts.
func FuzzFastYAMLToJSON(f *testing.F) {
	for _, tc := range fastYAMLCases {
		f.Add([]byte(tc.yaml))
	}
	chunks, _, _ := splitYAML("bench.yaml", benchStream(4), 1, 0)
	for _, c := range chunks {
		f.Add(c.data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkFastYAML(t, data)
	})
}

// TestFastYAMLToJSONGenerated compares the fast path with yaml on
// documents generated from the forms manifests use, with scalars chosen to
// be tricky: all must take the fast path, and match.
func TestFastYAMLToJSONGenerated(t *testing.T) {
	scalars := []string{
		"x", "web", "100m", "128Mi", "1.2.3", "10.0.0.1", "a b  c", "http://x/y#z", "a:b", "-x", "x#y",
		"0", "-1", "+5", "0777", "08", "0x1F", "0o17", "1_000", "0b101", "-0b11", "9223372036854775808", "1e3", "1.5", ".5", "-.5e-3", "1e21", "1e999", "1.",
		"yes", "No", "on", "OFF", "y", "n", "true", "False", "~", "null", "NULL", "",
		"2001-12-14", "2001-12-14T21:59:43.10Z", "12:30",
		`"q"`, `"a\tb\\c\"d"`, `"\x41\u00e9\U0001F600\N\_\L\P\0\e"`, `'it''s'`, `''`, `"<&>"`, `'#x'`, `"日本"`,
		"[a, 1, true, 'q', \"r\"]", "{cpu: 100m, memory: 1Gi}", "{b: 1, a: [x, {c: d}]}", "[]", "{}",
	}
	keys := []string{"a", "b", "name", "image", "app.kubernetes.io/name", "B", "_x", "z9", `"quoted key"`, `'1'`, "2001-01-01", "x y", "a:b", "ké"}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	var gen func(b *strings.Builder, indent string, depth int)
	gen = func(b *strings.Builder, indent string, depth int) {
		used := map[string]bool{}
		for range 1 + rng.IntN(4) {
			k := pick(keys)
			if used[k] {
				continue
			}
			used[k] = true
			switch r := rng.IntN(10); {
			case r < 5 || depth > 3:
				fmt.Fprintf(b, "%s%s: %s\n", indent, k, pick(scalars))
			case r < 6:
				chomp := pick([]string{"", "-", "+"})
				style := pick([]string{"|", ">"})
				fmt.Fprintf(b, "%s%s: %s%s\n%s  line one\n%s  line two\n\n%s  # not a comment\n", indent, k, style, chomp, indent, indent, indent)
				if chomp == "+" {
					b.WriteString("\n")
				}
			case r < 8:
				fmt.Fprintf(b, "%s%s:\n", indent, k)
				gen(b, indent+"  ", depth+1)
			default:
				fmt.Fprintf(b, "%s%s:\n", indent, k)
				seqIndent := indent + pick([]string{"", "  "})
				for range 1 + rng.IntN(3) {
					if rng.IntN(2) == 0 {
						fmt.Fprintf(b, "%s- %s\n", seqIndent, pick(scalars))
						continue
					}
					var item strings.Builder
					gen(&item, seqIndent+"  ", depth+1)
					fmt.Fprintf(b, "%s- %s", seqIndent, strings.TrimPrefix(item.String(), seqIndent+"  "))
				}
			}
			if rng.IntN(5) == 0 {
				fmt.Fprintf(b, "%s# a comment\n\n", indent)
			}
		}
	}
	for range 3000 {
		var b strings.Builder
		gen(&b, "", 0)
		doc := b.String()
		if rng.IntN(4) == 0 {
			doc = strings.ReplaceAll(doc, "\n", "\r\n")
		}
		if !checkFastYAML(t, []byte(doc)) {
			t.Fatalf("the fast path did not take:\n%s", doc)
		}
	}
}
