package manifests

import (
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
	"sigs.k8s.io/yaml"
)

// yamlToJSON converts one YAML document to JSON as kubectl does, with
// sigs.k8s.io/yaml's YAMLToJSON: a key given twice in a mapping is not an
// error, and its last value wins; a merge key (<<: *base) sets the keys of
// base, which the mapping's own keys may then override. Only the first YAML
// document of data is read, as in kubectl.
//
// It also returns the duplicate keys, for warnings: a duplicate key is
// nearly always a mistake (a label set twice, a second env where the first
// was meant), which kubectl passes over without a word. The keys a merge
// key brings are not duplicates.
func yamlToJSON(data []byte) ([]byte, []duplicate, error) {
	// A strict conversion gives the same JSON when no key is set twice,
	// which is nearly always; only when it fails is the document read
	// again.
	js, err := yaml.YAMLToJSONStrict(data)
	if err == nil || !isDuplicateKeyError(err) {
		return js, nil, err
	}
	if js, err = yaml.YAMLToJSON(data); err != nil {
		return nil, nil, err
	}
	// Keys set twice, or set by a merge key and then by the mapping: the
	// strict conversion does not tell them apart. The document's nodes do.
	dups, ok := duplicateKeys(data)
	if !ok {
		dups = strictDuplicates(err)
	}
	return js, dups, nil
}

// duplicate is a key set twice in a mapping: its path, the line of the
// last occurrence (the value that wins) and of the first, within the
// document (first is 0 when unknown).
type duplicate struct {
	path  string
	line  int
	first int
}

func isDuplicateKeyError(err error) bool {
	return strings.Contains(err.Error(), "already set in map")
}

// duplicateKeys finds the keys set twice in the mappings of a YAML
// document. ok is false if the document does not parse with yaml.v3.
// Aliases are not followed: the mapping they name is checked where it is
// written.
func duplicateKeys(data []byte) (dups []duplicate, ok bool) {
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(data, &doc); err != nil {
		return nil, false
	}
	var walk func(n *yamlv3.Node, path string)
	walk = func(n *yamlv3.Node, path string) {
		switch n.Kind {
		case yamlv3.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yamlv3.SequenceNode:
			for i, c := range n.Content {
				walk(c, path+"["+strconv.Itoa(i)+"]")
			}
		case yamlv3.MappingNode:
			var seen map[string]int
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Kind != yamlv3.ScalarNode {
					continue
				}
				if k.Tag == "!!merge" {
					// The merged mapping is checked where it is
					// written, or here if written in place.
					if v.Kind == yamlv3.MappingNode || v.Kind == yamlv3.SequenceNode {
						walk(v, path)
					}
					continue
				}
				p := keyPath(path, k.Value)
				if seen == nil {
					seen = make(map[string]int, len(n.Content)/2)
				}
				if first, ok := seen[k.Value]; ok {
					dups = append(dups, duplicate{path: p, line: k.Line, first: first})
				} else {
					seen[k.Value] = k.Line
				}
				walk(v, p)
			}
		}
	}
	walk(&doc, "")
	return dups, true
}

// keyPath appends a key to a field path: "spec.replicas", and
// "metadata.labels[app.kubernetes.io/name]" for a key that is not a plain
// name.
func keyPath(path, key string) string {
	plain := key != ""
	for _, c := range key {
		if !(c == '_' || c == '-' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			plain = false
			break
		}
	}
	switch {
	case !plain:
		return path + "[" + key + "]"
	case path == "":
		return key
	}
	return path + "." + key
}

// strictDuplicates reads the duplicates from yaml's strict error, `line 5:
// key "name" already set in map`, when yaml.v3 could not read the document.
// The path is then the key alone.
func strictDuplicates(err error) []duplicate {
	var dups []duplicate
	for _, l := range strings.Split(err.Error(), "\n") {
		n, text := cutLine(strings.TrimSpace(l))
		k, ok := strings.CutSuffix(text, " already set in map")
		if !ok {
			continue
		}
		k = strings.TrimPrefix(k, "key ")
		if u, err := strconv.Unquote(k); err == nil {
			k = u
		}
		dups = append(dups, duplicate{path: k, line: n})
	}
	return dups
}
