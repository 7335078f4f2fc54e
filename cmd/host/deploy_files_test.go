package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// This file reads the files in deploy/ the way their runtimes would: what
// command line, environment and files each plba host there starts with.
// deploy_test.go runs `host config validate` on exactly that.

// deployDir is deploy/ from cmd/host.
const deployDir = "../../deploy"

// launch is one plba host as a deploy file starts it.
type launch struct {
	name  string
	args  []string          // after the entrypoint: run --config ...
	env   map[string]string // PLBA_ variables (and others) it sets
	files map[string][]byte // absolute path in its filesystem -> content
}

// dockerfile is what the test needs from deploy/Dockerfile.
type dockerfile struct {
	entrypoint, cmd []string
	env             map[string]string
	files           map[string][]byte // from COPY of repository paths
	user, workdir   string
	volumes         []string
	healthcheck     []string
	chownData       string // --chown of the COPY into the working directory
}

// readDockerfile parses the final stage of deploy/Dockerfile (continued
// lines joined; JSON forms of ENTRYPOINT, CMD, VOLUME and HEALTHCHECK CMD).
func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(deployDir, "Dockerfile"))
	require.NoError(t, err)
	var lines []string
	var cur string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || l == "" && cur == "" {
			continue
		}
		if s, ok := strings.CutSuffix(l, "\\"); ok {
			cur += s + " "
			continue
		}
		lines = append(lines, cur+l)
		cur = ""
	}
	d := dockerfile{env: map[string]string{}, files: map[string][]byte{}}
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM": // a new stage: only the last one counts
			d = dockerfile{env: map[string]string{}, files: map[string][]byte{}}
		case "ENV":
			k, v, ok := strings.Cut(rest, "=")
			require.True(t, ok, "ENV %q: want KEY=value", rest)
			d.env[k] = strings.Trim(v, `"`)
		case "ENTRYPOINT":
			d.entrypoint = jsonList(t, rest)
		case "CMD":
			d.cmd = jsonList(t, rest)
		case "USER":
			d.user = rest
		case "WORKDIR":
			d.workdir = rest
		case "VOLUME":
			if strings.HasPrefix(rest, "[") {
				d.volumes = append(d.volumes, jsonList(t, rest)...)
			} else {
				d.volumes = append(d.volumes, strings.Fields(rest)...)
			}
		case "HEALTHCHECK":
			_, c, ok := strings.Cut(rest, "CMD ")
			require.True(t, ok, "HEALTHCHECK without CMD")
			d.healthcheck = jsonList(t, c)
		case "COPY":
			f := strings.Fields(rest)
			var flags, paths []string
			for _, x := range f {
				if strings.HasPrefix(x, "--") {
					flags = append(flags, x)
				} else {
					paths = append(paths, x)
				}
			}
			from := ""
			for _, fl := range flags {
				if v, ok := strings.CutPrefix(fl, "--from="); ok {
					from = v
				}
				if v, ok := strings.CutPrefix(fl, "--chown="); ok && len(paths) == 2 {
					d.chownData = paths[1] + " " + v
				}
			}
			if from == "" && len(paths) == 2 {
				copyRepoPath(t, paths[0], paths[1], d.files)
			}
		}
	}
	return d
}

// copyRepoPath records what `COPY src dst` puts in the image (src relative
// to the repository root; a directory is copied with its files).
func copyRepoPath(t *testing.T, src, dst string, into map[string][]byte) {
	t.Helper()
	local := filepath.Join("../..", src)
	st, err := os.Stat(local)
	require.NoError(t, err, "Dockerfile COPY %s", src)
	if !st.IsDir() {
		b, err := os.ReadFile(local)
		require.NoError(t, err)
		into[dst] = b
		return
	}
	entries, err := os.ReadDir(local)
	require.NoError(t, err)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(local, e.Name()))
		require.NoError(t, err)
		into[filepath.Join(dst, e.Name())] = b
	}
}

func jsonList(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	require.NoError(t, json.Unmarshal([]byte(s), &out), "want a JSON list (exec form): %s", s)
	return out
}

// yamlDocs decodes every document of a YAML file (anchors and merge keys
// resolved) into generic maps.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var docs []map[string]any
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return docs
		}
		require.NoError(t, err, path)
		if m != nil {
			docs = append(docs, m)
		}
	}
}

// dget walks nested maps by keys; nil when a key is missing.
func dget(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func dstr(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func dstrList(t *testing.T, v any) []string {
	t.Helper()
	if v == nil {
		return nil
	}
	l, ok := v.([]any)
	require.True(t, ok, "want a list, got %T %v", v, v)
	out := make([]string, len(l))
	for i, x := range l {
		out[i] = dstr(x)
	}
	return out
}

func dlist(v any) []any {
	l, _ := v.([]any)
	return l
}

var composeVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// interpolate expands compose's ${VAR}, ${VAR:-default} and ${VAR:?error}
// with an empty environment, except that a required variable gets
// operator(VAR): what the header of compose.yaml tells the operator to set.
func interpolate(s string, operator func(string) string) string {
	return composeVar.ReplaceAllStringFunc(s, func(m string) string {
		g := composeVar.FindStringSubmatch(m)
		switch {
		case strings.HasSuffix(g[2], "-"):
			return g[3]
		case strings.HasSuffix(g[2], "?"):
			return operator(g[1])
		}
		return ""
	})
}

// k8sObjects are the manifests of deploy/kubernetes by kind and name.
type k8sObjects map[string]map[string]any

func readKubernetes(t *testing.T) k8sObjects {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(deployDir, "kubernetes", "*.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	objs := k8sObjects{}
	for _, p := range paths {
		for _, d := range yamlDocs(t, p) {
			key := dstr(d["kind"]) + "/" + dstr(dget(d, "metadata", "name"))
			require.NotContains(t, objs, key, "%s defined twice", key)
			objs[key] = d
		}
	}
	return objs
}

// data returns a Secret's or ConfigMap's data, base64 decoded for a
// Secret's data and plain for stringData.
func (o k8sObjects) data(t *testing.T, kind, name string) map[string]string {
	t.Helper()
	obj, ok := o[kind+"/"+name]
	require.True(t, ok, "%s %q is referenced but not in deploy/kubernetes", kind, name)
	out := map[string]string{}
	if m, ok := obj["data"].(map[string]any); ok {
		for k, v := range m {
			if kind == "Secret" {
				b, err := base64.StdEncoding.DecodeString(dstr(v))
				require.NoError(t, err, "%s %s data.%s", kind, name, k)
				out[k] = string(b)
			} else {
				out[k] = dstr(v)
			}
		}
	}
	if m, ok := obj["stringData"].(map[string]any); ok {
		for k, v := range m {
			out[k] = dstr(v)
		}
	}
	return out
}

// systemdUnit is a unit file's [Service] settings, every value of a key in
// order.
type systemdUnit map[string][]string

func readSystemd(t *testing.T, path string) systemdUnit {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	u := systemdUnit{}
	section := ""
	for l := range strings.Lines(string(raw)) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";") {
			continue
		}
		if strings.HasPrefix(l, "[") {
			section = l
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		require.True(t, ok, "%s: %q is not key=value", path, l)
		u[section+k] = append(u[section+k], v)
	}
	return u
}

// dsortedKeys returns m's keys in order (for stable messages).
func dsortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
