package admin

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
)

// certReloader serves the certificate of a cert and key file pair and
// reads them again when either file's modification time or size changes
// (checked at most once a second, at a handshake). A pair that does not
// load keeps the previous certificate in use, and that is logged.
type certReloader struct {
	certFile, keyFile string
	log               *zap.Logger
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp
	checked time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(name string) (fileStamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

func newCertReloader(c TLSConfig, log *zap.Logger) *certReloader {
	return &certReloader{certFile: c.CertFile, keyFile: c.KeyFile, log: log, now: time.Now}
}

// load reads the pair now; the server's start calls it, so that a pair
// that does not load fails the start.
func (c *certReloader) load() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loadLocked()
}

func (c *certReloader) loadLocked() error {
	var st [2]fileStamp
	for i, f := range []string{c.certFile, c.keyFile} {
		s, err := stampOf(f)
		if err != nil {
			return fmt.Errorf("admin: tls: %w", err)
		}
		st[i] = s
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("admin: tls: load %s and %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.stamp, c.checked = &cert, st, c.now()
	return nil
}

// getCertificate is tls.Config.GetCertificate.
func (c *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if now.Sub(c.checked) < time.Second && c.cert != nil {
		return c.cert, nil
	}
	c.checked = now
	changed := false
	for i, f := range []string{c.certFile, c.keyFile} {
		s, err := stampOf(f)
		if err != nil || s != c.stamp[i] {
			changed = true
		}
	}
	if changed {
		if err := c.loadLocked(); err != nil {
			c.log.Error("admin: tls: certificate changed but does not load; keeping the one in use", zap.Error(err))
		} else {
			c.log.Info("admin: tls: certificate reloaded", zap.String("cert_file", c.certFile))
		}
	}
	if c.cert == nil {
		return nil, fmt.Errorf("admin: tls: no certificate")
	}
	return c.cert, nil
}

// tlsConfig is the server's TLS configuration.
func (c *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: c.getCertificate}
}
