package admin_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/plba/plba/platform/admin"
	"github.com/plba/plba/platform/health"
	"github.com/plba/plba/platform/lifecycle"
)

// selfSigned writes a self-signed certificate for 127.0.0.1 named cn to
// certFile and keyFile (through a rename: what a renewal does) and returns
// it.
func selfSigned(t *testing.T, cn, certFile, keyFile string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	write := func(name, typ string, b []byte) {
		tmp := name + ".tmp"
		require.NoError(t, os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600))
		require.NoError(t, os.Rename(tmp, name))
	}
	write(keyFile, "EC PRIVATE KEY", kder)
	write(certFile, "CERTIFICATE", der)
	c, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	return c
}

// TestTLSReloadsTheCertificate: the admin listener serves TLS with the
// configured pair, picks up a renewed pair without a restart, and keeps
// the one in use when the files turn bad; session cookies are Secure.
func TestTLSReloadsTheCertificate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	first := selfSigned(t, "first", certFile, keyFile)
	cfg := secured(t)
	cfg.TLS = admin.TLSConfig{CertFile: certFile, KeyFile: keyFile}
	s, err := admin.NewServer(cfg, nil, admin.StatusInfo{}, nil, nil, nil)
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })

	roots := x509.NewCertPool()
	roots.AddCert(first)
	client := func() *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true}}
	}
	peer := func() string {
		resp, err := client().Get("https://" + s.Addr() + "/livez")
		require.NoError(t, err)
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	require.Equal(t, "first", peer())

	resp, err := client().Post("https://"+s.Addr()+admin.SessionPath, "application/json",
		strings.NewReader(`{"name":"alice","password":"alicealice"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.True(t, resp.Cookies()[0].Secure, "over TLS the session cookie is Secure")

	second := selfSigned(t, "second", certFile, keyFile)
	roots.AddCert(second)
	require.Eventually(t, func() bool { return peer() == "second" }, 15*time.Second, 100*time.Millisecond)

	// A broken pair: the server keeps serving the last good one.
	require.NoError(t, os.WriteFile(certFile, []byte("not a certificate"), 0o600))
	time.Sleep(1100 * time.Millisecond) // past the once-a-second check, so the bad file is read
	require.Equal(t, "second", peer())
}

// TestTLSStartFailsOnABadPair: a pair that does not load fails the start.
func TestTLSStartFailsOnABadPair(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := local()
	cfg.TLS = admin.TLSConfig{CertFile: filepath.Join(dir, "missing.crt"), KeyFile: filepath.Join(dir, "missing.key")}
	s, err := admin.NewServer(cfg, nil, admin.StatusInfo{}, nil, nil, nil)
	require.NoError(t, err)
	err = s.Start(context.Background())
	require.ErrorContains(t, err, "admin: tls")
	require.Empty(t, s.Addr())
}

// TestProbesListener: the probes listener serves /livez, /readyz and
// /metrics without credentials, and nothing else; on the main listener
// /livez stays public and /metrics needs a role.
func TestProbesListener(t *testing.T) {
	t.Parallel()
	cfg := secured(t)
	cfg.ProbesListen = "127.0.0.1:0"
	comps := lifecycle.NewRegistry(nil, nil)
	hr, err := health.NewRegistry(health.Options{}, comps, nil)
	require.NoError(t, err)
	s, err := admin.NewServer(cfg, nil, admin.StatusInfo{}, comps, hr, sampleRoutes())
	require.NoError(t, err)
	require.NoError(t, s.Start(context.Background()))
	t.Cleanup(func() { require.NoError(t, s.Stop(context.Background())) })
	probes, main := "http://"+s.ProbesAddr(), "http://"+s.Addr()
	require.NotEqual(t, probes, main)
	for _, p := range []string{"/livez", "/readyz", "/healthz", "/metrics"} {
		code, _ := get(t, probes+p)
		require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound}, code, p)
	}
	for _, p := range []string{"/admin/v1/status", "/admin/v1/mailorder", admin.AuditPath} {
		code, _ := get(t, probes+p)
		require.Equal(t, http.StatusNotFound, code, p)
	}
	code, _ := get(t, main+"/livez")
	require.Equal(t, http.StatusOK, code)
	code, _ = get(t, main+"/metrics")
	require.Equal(t, http.StatusUnauthorized, code)
}
