package main

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// The deploy files start: every plba host that deploy/ describes passes
// `host config validate` with exactly the command line, environment and
// files it would start with, so a renamed key breaks the build and not
// the first deploy. deploy_files_test.go reads the files.

// hostBinary is where the image installs the host (Dockerfile ENTRYPOINT,
// systemd ExecStart).
const hostBinary = "/usr/local/bin/host"

// sampleSecrets are the contents the operator puts in the secret files
// deploy/README.md and compose.yaml's header name, in the form they take.
var sampleSecrets = map[string]string{
	"admin_token":       "sample-admin-token-0123456789",
	"mailbox_password":  "imap-password",
	"mailbox-password":  "imap-password",
	"orders_db_url":     "postgres://plba:orders@postgres:5432/plba?sslmode=disable",
	"postgres_password": "orders",
}

// validateLaunch runs `host config validate` as l would start, with l's
// files laid out under a temporary root (every mention of their absolute
// paths in args, env and config files rewritten), and returns the configuration it
// validated as `config show` prints it.
func validateLaunch(t *testing.T, l launch) map[string]any {
	t.Helper()
	root := t.TempDir()
	paths := dsortedKeys(l.files)
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	rewrite := func(s string) string {
		for _, p := range paths {
			s = strings.ReplaceAll(s, p, filepath.Join(root, p))
		}
		return s
	}
	for _, p := range paths {
		b := l.files[p]
		if strings.HasSuffix(p, ".yaml") { // a config file naming another file (a secret)
			b = []byte(rewrite(string(b)))
		}
		writeUnder(t, root, p, b)
	}
	require.NotEmpty(t, l.args, "%s: no command", l.name)
	require.Equal(t, "run", l.args[0], "%s: the host is started with run", l.name)
	var args []string
	for _, a := range l.args[1:] {
		args = append(args, rewrite(a))
	}
	var env []string
	for _, k := range dsortedKeys(l.env) {
		env = append(env, k+"="+rewrite(l.env[k]))
	}
	r := runHostCmd(t, env, append([]string{"config", "validate"}, args...)...)
	require.Equal(t, 0, r.code, "%s: host config validate %v\nenv %v\n%s", l.name, args, env, r.stderr)
	require.Contains(t, r.stdout, "configuration valid")
	show := runHostCmd(t, env, append([]string{"config", "show"}, args...)...)
	require.Equal(t, 0, show.code, show.stderr)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(show.stdout), &cfg))
	return cfg
}

func writeUnder(t *testing.T, root, p string, b []byte) {
	t.Helper()
	full := filepath.Join(root, p)
	require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
	require.NoError(t, os.WriteFile(full, b, 0o600))
}

// requireShared: several hosts share one configuration only on shared
// state, an external JetStream cluster with R3 streams and orders in
// PostgreSQL (not SQLite files, not embedded servers).
func requireShared(t *testing.T, name string, cfg map[string]any) {
	t.Helper()
	require.Equal(t, "jetstream", dstr(dget(cfg, "queue", "backend")), name)
	js := dget(cfg, "queue", "jetstream")
	require.True(t, dstr(dget(js, "url")) != "" || len(dlist(dget(js, "urls"))) > 0, "%s: no NATS url", name)
	require.Equal(t, "3", dstr(dget(js, "replicas")), "%s: streams replicated on the cluster", name)
	require.Equal(t, "postgres", dstr(dget(cfg, "mailorder", "store", "driver")), name)
	require.Equal(t, "true", dstr(dget(cfg, "mailorder", "mailbox", "exclusive")), "%s: one host watches the mailbox", name)
	requireAdminAuth(t, name, cfg)
}

// requireAdminAuth: an admin server that listens beyond loopback requires
// a token (the container's configs/container.yaml), and the probes have a
// listener of their own.
func requireAdminAuth(t *testing.T, name string, cfg map[string]any) {
	t.Helper()
	listen := dstr(dget(cfg, "admin", "listen"))
	if strings.HasPrefix(listen, "127.0.0.1:") {
		return
	}
	require.Equal(t, "0.0.0.0:8080", listen, name)
	require.Equal(t, "0.0.0.0:8081", dstr(dget(cfg, "admin", "probes_listen")), "%s: probes on their own port", name)
	require.NotEqual(t, "none", dstr(dget(cfg, "admin", "auth", "mode")), name)
	require.NotEmpty(t, dlist(dget(cfg, "admin", "auth", "tokens")), "%s: the admin API needs a token", name)
}

func TestDeployDockerfile(t *testing.T) {
	t.Parallel()
	d := readDockerfile(t)
	require.Equal(t, []string{hostBinary}, d.entrypoint)
	require.NotContains(t, []string{"", "root", "0", "0:0"}, d.user, "runs as a non-root user")
	require.Contains(t, d.volumes, d.workdir, "the working (data) directory is a volume")
	uid, _, _ := strings.Cut(d.user, ":")
	require.True(t, strings.HasPrefix(d.chownData, d.workdir+" "+uid), "the data directory is owned by the runtime user: %q", d.chownData)
	require.Contains(t, strings.Join(d.healthcheck, " "), "127.0.0.1:8081/readyz", "the health check asks the probes listener")

	base := launch{name: "Dockerfile", args: d.cmd, env: d.env, files: d.files}
	// The image alone needs the mailbox: deploy/README.md's docker run
	// passes these three variables.
	r := runHostCmd(t, nil, append([]string{"config", "validate"}, rewriteImagePaths(t, d.cmd[1:], d.files)...)...)
	require.Equal(t, 2, r.code, r.stderr)
	require.Contains(t, r.stderr, "mailorder.mailbox.host: required")

	withMailbox := base
	withMailbox.env = map[string]string{
		"PLBA_MAILORDER__MAILBOX__HOST":     "imap.example.com",
		"PLBA_MAILORDER__MAILBOX__USERNAME": "orders@example.com",
		"PLBA_MAILORDER__MAILBOX__PASSWORD": "imap-password",
	}
	for k, v := range d.env {
		withMailbox.env[k] = v
	}
	// deploy/README.md's docker run mounts the admin token.
	withMailbox.files = map[string][]byte{"/run/secrets/admin_token": []byte(sampleSecrets["admin_token"])}
	for k, v := range d.files {
		withMailbox.files[k] = v
	}
	cfg := validateLaunch(t, withMailbox)
	require.Equal(t, "0.0.0.0:8080", dstr(dget(cfg, "admin", "listen")), "the container's admin server listens beyond its loopback")
	requireAdminAuth(t, "Dockerfile", cfg)
}

// rewriteImagePaths lays the image's files out under a temp root and
// rewrites args to point there.
func rewriteImagePaths(t *testing.T, args []string, files map[string][]byte) []string {
	t.Helper()
	root := t.TempDir()
	for p, b := range files {
		writeUnder(t, root, p, b)
	}
	out := slices.Clone(args)
	for i, a := range out {
		if _, ok := files[a]; ok {
			out[i] = filepath.Join(root, a)
		}
	}
	return out
}

func TestDeployCompose(t *testing.T) {
	t.Parallel()
	d := readDockerfile(t)
	path := filepath.Join(deployDir, "compose.yaml")
	docs := yamlDocs(t, path)
	require.Len(t, docs, 1)
	doc := docs[0]
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	header := string(raw)
	operator := func(name string) string {
		require.Contains(t, header, name+"=", "compose.yaml's header tells the operator to set %s", name)
		return "sample-" + strings.ToLower(name)
	}
	services, ok := doc["services"].(map[string]any)
	require.True(t, ok, "compose.yaml has services")
	hosts, nats := 0, 0
	for _, name := range dsortedKeys(services) {
		svc := services[name]
		image := dstr(dget(svc, "image"))
		if strings.HasPrefix(image, "nats:") {
			nats++
			require.NotEmpty(t, dlist(dget(svc, "volumes")), "%s keeps its JetStream store on a volume", name)
			require.Contains(t, strings.Join(dstrList(t, dget(svc, "command")), " "), "-js")
			continue
		}
		if dget(svc, "build") == nil && !strings.HasPrefix(image, "plba/host") {
			continue
		}
		hosts++
		l := launch{name: "compose " + name, env: map[string]string{}, files: map[string][]byte{}}
		for k, v := range d.files {
			l.files[k] = v
		}
		for k, v := range d.env {
			l.env[k] = v
		}
		switch env := dget(svc, "environment").(type) {
		case map[string]any:
			for k, v := range env {
				l.env[k] = interpolate(dstr(v), operator)
			}
		case []any:
			for _, kv := range env {
				k, v, _ := strings.Cut(dstr(kv), "=")
				l.env[k] = interpolate(v, operator)
			}
		}
		l.args = d.cmd
		if c := dget(svc, "command"); c != nil {
			l.args = dstrList(t, c)
		}
		require.Nil(t, dget(svc, "entrypoint"), "%s: the image's entrypoint", name)
		for _, s := range dlist(dget(svc, "secrets")) {
			secret := dstr(s)
			if m, ok := s.(map[string]any); ok {
				secret = dstr(m["source"])
				require.Nil(t, m["target"], "%s: secrets at /run/secrets/<name>", name)
			}
			require.NotNil(t, dget(doc, "secrets", secret), "%s: secret %q is declared", name, secret)
			content, ok := sampleSecrets[secret]
			require.True(t, ok, "secret %q: add its sample content to sampleSecrets", secret)
			require.Contains(t, header, "secrets/"+secret, "compose.yaml's header says how to make %s", secret)
			l.files["/run/secrets/"+secret] = []byte(content)
		}
		for _, p := range dlist(dget(svc, "ports")) {
			require.True(t, strings.HasSuffix(dstr(p), ":8080"), "%s: only the admin API (authenticated) is published: %v", name, p)
		}
		require.Contains(t, strings.Join(dstrList(t, dget(svc, "healthcheck", "test")), " "), "/readyz", "%s: health check on /readyz", name)
		require.NotEmpty(t, dlist(dget(svc, "volumes")), "%s: a volume for its data directory", name)
		requireShared(t, l.name, validateLaunch(t, l))
	}
	require.Equal(t, 2, hosts, "two plba hosts")
	require.Equal(t, 3, nats, "a three-node NATS cluster")
	require.Contains(t, services, "postgres")
}

func TestDeployKubernetes(t *testing.T) {
	t.Parallel()
	d := readDockerfile(t)
	objs := readKubernetes(t)
	hosts := 0
	for _, key := range dsortedKeys(objs) {
		obj := objs[key]
		kind := dstr(obj["kind"])
		if kind == "StatefulSet" && dstr(dget(obj, "metadata", "name")) == "nats" {
			require.Equal(t, 3, dget(obj, "spec", "replicas"), "NATS: three servers")
			require.NotEmpty(t, dlist(dget(obj, "spec", "volumeClaimTemplates")), "NATS: a volume per server")
		}
		if kind != "Deployment" && kind != "StatefulSet" {
			continue
		}
		pod := dget(obj, "spec", "template", "spec")
		for _, c := range dlist(dget(pod, "containers")) {
			if !strings.HasPrefix(dstr(dget(c, "image")), "plba/host") {
				continue
			}
			hosts++
			l := kubernetesLaunch(t, key, objs, d, pod, c)
			requireShared(t, l.name, validateLaunch(t, l))

			require.Equal(t, true, dget(pod, "securityContext", "runAsNonRoot"), "%s: non-root", key)
			require.Equal(t, true, dget(c, "securityContext", "readOnlyRootFilesystem"), "%s: read-only root", key)
			require.Equal(t, false, dget(c, "securityContext", "allowPrivilegeEscalation"), key)
			requireWritableMount(t, key, pod, c, d.workdir)
			ports := map[string]int{}
			for _, p := range dlist(dget(c, "ports")) {
				ports[dstr(dget(p, "name"))] = dget(p, "containerPort").(int)
			}
			require.Equal(t, map[string]int{"admin": 8080, "probes": 8081}, ports, key)
			for probe, route := range map[string]string{"livenessProbe": "/livez", "readinessProbe": "/readyz", "startupProbe": "/livez"} {
				require.Equal(t, route, dstr(dget(c, probe, "httpGet", "path")), "%s: %s", key, probe)
				require.Equal(t, "probes", dstr(dget(c, probe, "httpGet", "port")), "%s: %s on the probes listener", key, probe)
			}
			labels := dget(obj, "spec", "selector", "matchLabels")
			requirePDB(t, objs, key, labels)
			for _, k := range dsortedKeys(objs) {
				if strings.HasPrefix(k, "Service/") && equalAny(labels, dget(objs[k], "spec", "selector")) {
					for _, p := range dlist(dget(objs[k], "spec", "ports")) {
						require.Equal(t, "admin", dstr(dget(p, "targetPort")), "%s exposes only the authenticated admin API of %s", k, key)
					}
				}
			}
		}
	}
	require.Equal(t, 1, hosts, "one plba host workload")
}

// kubernetesLaunch is what the container c of pod starts with: the image's
// files under the pod's mounts, args, env and envFrom resolved against the
// manifests' Secrets and ConfigMaps.
func kubernetesLaunch(t *testing.T, key string, objs k8sObjects, d dockerfile, pod, c any) launch {
	t.Helper()
	require.Nil(t, dget(c, "command"), "%s: the image's entrypoint", key)
	l := launch{name: "kubernetes " + key, args: d.cmd, env: map[string]string{}, files: map[string][]byte{}}
	if a := dget(c, "args"); a != nil {
		l.args = dstrList(t, a)
	}
	for k, v := range d.env {
		l.env[k] = v
	}
	for _, e := range dlist(dget(c, "envFrom")) {
		for _, kind := range []string{"Secret", "ConfigMap"} {
			ref := dget(e, strings.ToLower(kind[:1])+kind[1:]+"Ref", "name")
			if ref != nil {
				for k, v := range objs.data(t, kind, dstr(ref)) {
					l.env[dstr(dget(e, "prefix"))+k] = v
				}
			}
		}
	}
	for _, e := range dlist(dget(c, "env")) {
		name := dstr(dget(e, "name"))
		switch {
		case dget(e, "valueFrom", "secretKeyRef") != nil:
			ref := dget(e, "valueFrom", "secretKeyRef")
			v, ok := objs.data(t, "Secret", dstr(dget(ref, "name")))[dstr(dget(ref, "key"))]
			require.True(t, ok, "%s: env %s: no such key in its Secret", key, name)
			l.env[name] = v
		case dget(e, "valueFrom", "configMapKeyRef") != nil:
			ref := dget(e, "valueFrom", "configMapKeyRef")
			v, ok := objs.data(t, "ConfigMap", dstr(dget(ref, "name")))[dstr(dget(ref, "key"))]
			require.True(t, ok, "%s: env %s: no such key in its ConfigMap", key, name)
			l.env[name] = v
		default:
			require.NotContains(t, dstr(dget(e, "value")), "$(", "%s: env %s: no $(VAR) references", key, name)
			l.env[name] = dstr(dget(e, "value"))
		}
	}
	volumes := map[string]any{}
	for _, v := range dlist(dget(pod, "volumes")) {
		volumes[dstr(dget(v, "name"))] = v
	}
	for k, v := range d.files {
		l.files[k] = v
	}
	for _, m := range dlist(dget(c, "volumeMounts")) {
		mount := dstr(dget(m, "mountPath"))
		v, ok := volumes[dstr(dget(m, "name"))]
		require.True(t, ok, "%s: mount %s: no such volume", key, mount)
		for p := range l.files { // a mount hides what the image has there
			if strings.HasPrefix(p, mount+"/") {
				delete(l.files, p)
			}
		}
		for _, kind := range []string{"ConfigMap", "Secret"} {
			field, nameKey := "configMap", "name"
			if kind == "Secret" {
				field, nameKey = "secret", "secretName"
			}
			if ref := dget(v, field, nameKey); ref != nil {
				require.Nil(t, dget(v, field, "items"), "%s: mount %s: whole %s", key, mount, kind)
				for k, content := range objs.data(t, kind, dstr(ref)) {
					l.files[mount+"/"+k] = []byte(content)
				}
			}
		}
	}
	return l
}

func requireWritableMount(t *testing.T, key string, pod, c any, dir string) {
	t.Helper()
	for _, m := range dlist(dget(c, "volumeMounts")) {
		if dstr(dget(m, "mountPath")) != dir {
			continue
		}
		require.NotEqual(t, true, dget(m, "readOnly"), "%s: %s is writable", key, dir)
		for _, v := range dlist(dget(pod, "volumes")) {
			if dget(v, "name") == dget(m, "name") {
				require.True(t, dget(v, "emptyDir") != nil || dget(v, "persistentVolumeClaim") != nil, "%s: %s on a writable volume", key, dir)
				return
			}
		}
	}
	require.Failf(t, "no data volume", "%s: no writable volume at the data directory %s", key, dir)
}

func requirePDB(t *testing.T, objs k8sObjects, key string, labels any) {
	t.Helper()
	for _, k := range dsortedKeys(objs) {
		if strings.HasPrefix(k, "PodDisruptionBudget/") && equalAny(dget(objs[k], "spec", "selector", "matchLabels"), labels) {
			return
		}
	}
	require.Failf(t, "no PodDisruptionBudget", "%s has none", key)
}

func equalAny(a, b any) bool {
	ya, _ := yaml.Marshal(a)
	yb, _ := yaml.Marshal(b)
	return a != nil && string(ya) == string(yb)
}

func TestDeploySystemd(t *testing.T) {
	t.Parallel()
	path := filepath.Join(deployDir, "systemd", "plba.service")
	u := readSystemd(t, path)
	one := func(key string) string {
		v := u["[Service]"+key]
		require.NotEmpty(t, v, "%s: [Service] %s", path, key)
		return v[len(v)-1]
	}
	for key, want := range map[string]string{
		"DynamicUser": "yes", "StateDirectory": "plba", "ProtectSystem": "strict",
		"NoNewPrivileges": "yes", "PrivateTmp": "yes", "WorkingDirectory": "%S/plba",
	} {
		require.Equal(t, want, one(key), "%s: %s", path, key)
	}
	// Specifiers as systemd expands them for a system service.
	const creds = "/run/credentials/plba.service"
	spec := strings.NewReplacer("%d", creds, "%S", "/var/lib", "%%", "%")
	l := launch{name: "systemd", env: map[string]string{}, files: map[string][]byte{}}
	copyRepoPath(t, "configs/", "/etc/plba/", l.files) // the installation the unit's header describes
	for _, lc := range u["[Service]LoadCredential"] {
		name, _, ok := strings.Cut(lc, ":")
		require.True(t, ok, "LoadCredential=%s", lc)
		content, ok := sampleSecrets[name]
		require.True(t, ok, "credential %q: add its sample content to sampleSecrets", name)
		l.files[creds+"/"+name] = []byte(content)
	}
	for _, e := range u["[Service]Environment"] {
		for _, kv := range strings.Fields(e) {
			k, v, ok := strings.Cut(strings.Trim(kv, `"`), "=")
			require.True(t, ok, "Environment=%s", e)
			l.env[k] = spec.Replace(v)
		}
	}
	for _, ef := range u["[Service]EnvironmentFile"] {
		require.True(t, strings.HasPrefix(ef, "-"), "EnvironmentFile=%s: optional (the operator's overrides)", ef)
	}
	var execs []string
	execs = append(execs, u["[Service]ExecStartPre"]...)
	execs = append(execs, one("ExecStart"))
	for _, x := range execs {
		argv := strings.Fields(spec.Replace(strings.TrimLeft(x, "-+!@:")))
		require.Equal(t, hostBinary, argv[0], x)
		if argv[1] == "config" { // ExecStartPre's own validation
			require.Equal(t, "validate", argv[2], x)
			argv = append([]string{hostBinary, "run"}, argv[3:]...)
		}
		l.args = argv[1:]
		l.name = "systemd " + x
		cfg := validateLaunch(t, l)
		require.True(t, strings.HasPrefix(dstr(dget(cfg, "admin", "listen")), "127.0.0.1:"), "one host per machine: the admin API on loopback")
	}
}
