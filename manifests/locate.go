package manifests

import (
	"strconv"
	"strings"

	yamlv3 "go.yaml.in/yaml/v3"
)

// locate returns the 1-based lines, within src (one YAML or JSON document),
// of the fields at paths ("spec.template.spec.containers[0].imagee"), or of
// the deepest part of each path it finds; all 0 if src does not parse. It
// runs only for documents already known to be bad, so parsing them a second
// time costs nothing on good input.
//
// Paths from type errors carry no list indices
// ("spec.template.spec.containers.ports.containerPort"): a name met at a
// list is looked for in each of its items, and the first match wins.
func locate(src []byte, paths ...string) []int {
	lines := make([]int, len(paths))
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(src, &doc); err != nil || doc.Kind != yamlv3.DocumentNode || len(doc.Content) == 0 {
		return lines
	}
	root := doc.Content[0]
	for i, path := range paths {
		lines[i], _ = find(root, splitPath(path), root.Line)
	}
	return lines
}

// segment is a step in a field path: a key, or an index when key is "".
type segment struct {
	key   string
	index int
}

// splitPath splits a field path at its dots and brackets. What is inside
// brackets is an index, or a map key, which may hold dots
// (metadata.annotations[podguard.io/logs], as field.Path writes it).
func splitPath(path string) []segment {
	var segs []segment
	for path != "" {
		switch path[0] {
		case '.':
			path = path[1:]
		case '[':
			inner, rest, _ := strings.Cut(path[1:], "]")
			path = rest
			if n, err := strconv.Atoi(inner); err == nil {
				segs = append(segs, segment{index: n})
			} else {
				segs = append(segs, segment{key: strings.Trim(inner, `"`)})
			}
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			segs = append(segs, segment{key: path[:end]})
			path = path[end:]
		}
	}
	return segs
}

// find follows segs from n, and returns the line of the node reached (for a
// key, the key's line) and whether it reached the end of the path; when it
// does not, the line is that of the deepest node it reached.
//
// Through an alias (`- *c`), the line stays the alias's: the anchor's lines
// are elsewhere in the file, and the finding is about this use of it.
func find(n *yamlv3.Node, segs []segment, line int) (int, bool) {
	aliased := false
	for n != nil && n.Kind == yamlv3.AliasNode {
		n, aliased = n.Alias, true
	}
	if n == nil {
		return line, false
	}
	if len(segs) == 0 {
		return line, true
	}
	if aliased {
		_, ok := find(n, segs, line)
		return line, ok
	}
	seg := segs[0]
	switch n.Kind {
	case yamlv3.MappingNode:
		if seg.key == "" {
			break
		}
		// From the end: of duplicate keys, the decoder keeps the last.
		for i := len(n.Content) - 2; i >= 0; i -= 2 {
			if k := n.Content[i]; k.Value == seg.key {
				return find(n.Content[i+1], segs[1:], k.Line)
			}
		}
	case yamlv3.SequenceNode:
		if seg.key == "" {
			if seg.index >= 0 && seg.index < len(n.Content) {
				item := n.Content[seg.index]
				return find(item, segs[1:], item.Line)
			}
			break
		}
		for _, item := range n.Content {
			if l, ok := find(item, segs, item.Line); ok {
				return l, true
			}
		}
	}
	return line, false
}
