package config

import (
	"slices"
	"strings"
)

type source struct {
	name string
	rank int // layer order: later layers have higher ranks
}

// attribute fills in each problem's source from the latest layer that
// supplied the key or any key under it, else from the nearest parent key
// that a layer supplied.
func (c *Config) attribute(ps []Problem) []Problem {
	for i := range ps {
		if ps[i].Source == "" {
			ps[i].Source = c.sourceOf(ps[i].Key)
		}
	}
	return ps
}

// untouched reports whether no layer above the defaults set any key of
// section name (keys of dotted sections below it do not count).
func (c *Config) untouched(secs []declared, name string) bool {
	for k, s := range c.sources {
		if s.rank == 0 || (k != name && !isBelow(k, name)) {
			continue
		}
		if owner := ownerOf(secs, k); owner == name {
			return false
		}
	}
	return true
}

// ownerOf returns the declared section a key belongs to: the longest
// section name that is the key or a parent of it.
func ownerOf(secs []declared, key string) string {
	best := ""
	for _, d := range secs {
		if (key == d.name || isBelow(key, d.name)) && len(d.name) > len(best) {
			best = d.name
		}
	}
	return best
}

func (c *Config) sourceOf(key string) string {
	if name, ok := c.SourceOf(key); ok {
		return name
	}
	return "default"
}

// SourceOf names where the value at key (a full dotted key path, as a
// Problem's Key) came from, as Load names it in its problems: a file
// path, "env PLBA_X__Y", "--set x.y=..." or "default". ok is false when
// no layer, not even the defaults, holds the key, a key under it or a
// parent of it. A check that runs after Load (one that compares
// sections) uses it to name the source of its problems.
func (c *Config) SourceOf(key string) (name string, ok bool) {
	// The key itself or the latest layer that set anything below it (a
	// later layer may have replaced a value by a mapping or back).
	best, ok := c.sources[key]
	if !ok {
		best = source{rank: -1}
	}
	for k, s := range c.sources {
		if isBelow(k, key) && s.rank > best.rank {
			best = s
		}
	}
	if best.rank >= 0 {
		return best.name, true
	}
	for p := parentKey(key); p != ""; p = parentKey(p) {
		if s, ok := c.sources[p]; ok {
			return s.name, true
		}
	}
	return "", false
}

// rankOf returns the rank of the layer that set key, else of the one that
// set its nearest parent (a list holding it); -1 when none did.
func (c *Config) rankOf(key string) int {
	for k := key; k != ""; k = parentKey(k) {
		if s, ok := c.sources[k]; ok {
			return s.rank
		}
	}
	return -1
}

func parentKey(key string) string {
	i := strings.LastIndexAny(key, ".[")
	if i < 0 {
		return ""
	}
	return key[:i]
}

// IsSet reports whether a layer above the declared defaults (a file, the
// environment, --set, Options.Values) set a key of the declared section
// name; keys of dotted sections below it do not count. The host uses it
// to report a section that is set but that no composed module uses.
func (c *Config) IsSet(name string) bool {
	secs := c.reg.snapshot()
	if !slices.ContainsFunc(secs, func(d declared) bool { return d.name == name }) {
		return false
	}
	return !c.untouched(secs, name)
}
