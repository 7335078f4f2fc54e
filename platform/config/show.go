package config

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Check decodes and validates the named sections with their declared
// types, whether or not a layer set them (Load leaves a section that only
// has its defaults to the module that uses it), and returns every problem
// found as an *Error, or nil.
func (c *Config) Check(sections ...string) error {
	var ps []Problem
	for _, name := range sections {
		d, ok := c.reg.lookup(name)
		if !ok {
			ps = append(ps, Problem{Key: name, Msg: "unknown section"})
			continue
		}
		err := c.Decode(name, reflect.New(d.typ).Interface())
		if ce, ok := err.(*Error); ok {
			ps = append(ps, ce.Problems...)
		} else if err != nil {
			ps = append(ps, Problem{Key: name, Msg: err.Error()})
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return &Error{Problems: dedupe(ps)}
}

// Show renders the named sections of the effective configuration as YAML
// (as YAML does: defaults, files, environment and --set applied, secrets
// redacted, keys sorted), each problem a comment on the line of its key
// ("host: ""  # problem: required"), or on the nearest line above it that
// exists; a problem without a key opens the text. It prints an incomplete
// configuration too: a configuration loaded with Options.Partial holds
// every value that decoded.
func (c *Config) Show(sections []string, problems []Problem) ([]byte, error) {
	root := map[string]any{}
	for _, name := range sections {
		if v, ok := c.values[name]; ok {
			setPath(root, name, toTree(reflect.ValueOf(v), true))
		}
	}
	var doc yaml.Node
	if err := doc.Encode(root); err != nil {
		return nil, fmt.Errorf("config: render YAML: %w", err)
	}
	var head []string
	for _, p := range dedupe(slices.Clone(problems)) {
		mark := "problem: " + p.Msg
		if p.Source != "" && p.Source != "default" {
			mark += " (" + p.Source + ")"
		}
		n := findKey(&doc, p.Key)
		if n == nil {
			head = append(head, strings.TrimSpace(p.Key+": "+mark))
			continue
		}
		if n.LineComment != "" {
			n.LineComment += "; " + mark
		} else {
			n.LineComment = "# " + mark
		}
	}
	if len(head) > 0 {
		doc.HeadComment = "# " + strings.Join(head, "\n# ")
	}
	b, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, fmt.Errorf("config: render YAML: %w", err)
	}
	return b, nil
}

// findKey returns the node that carries the line of the dotted key path
// (a mapping key node, a sequence item, or the first key of an item that
// is a block mapping), or the nearest such node above it; nil when not
// even the first segment exists.
func findKey(doc *yaml.Node, key string) *yaml.Node {
	if key == "" {
		return nil
	}
	cur := doc
	if cur.Kind == yaml.DocumentNode && len(cur.Content) > 0 {
		cur = cur.Content[0]
	}
	var found *yaml.Node
	for _, seg := range keySegments(key) {
		switch {
		case cur.Kind == yaml.MappingNode:
			// Keys only: a value that reads like the key ("driver:
			// postgres" above "postgres:") is not its line.
			i := -1
			for j := 0; j+1 < len(cur.Content); j += 2 {
				if cur.Content[j].Value == seg {
					i = j
					break
				}
			}
			if i < 0 {
				return found
			}
			found, cur = cur.Content[i], cur.Content[i+1]
		case cur.Kind == yaml.SequenceNode && strings.HasPrefix(seg, "["):
			idx, err := strconv.Atoi(strings.Trim(seg, "[]"))
			if err != nil || idx < 0 || idx >= len(cur.Content) {
				return found
			}
			cur = cur.Content[idx]
			found = cur
			if cur.Kind == yaml.MappingNode && len(cur.Content) > 0 && cur.Style&yaml.FlowStyle == 0 {
				// The comment of a block mapping is printed after it, on
				// the line of whatever follows; its first key shares the
				// entry's line ("- name: a").
				found = cur.Content[0]
			}
		default:
			return found
		}
	}
	return found
}

// keySegments splits "a.b[2].c" into "a", "b", "[2]", "c".
func keySegments(key string) []string {
	var out []string
	for part := range strings.SplitSeq(key, ".") {
		for part != "" {
			i := strings.Index(part[1:], "[")
			if i < 0 {
				out = append(out, part)
				break
			}
			out = append(out, part[:i+1])
			part = part[i+1:]
		}
	}
	return out
}
