package server

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// keyPair serves a certificate and key given as files (Let's Encrypt's
// fullchain.pem and privkey.pem, say), read again when either file
// changes: a certificate renewed in place (certbot) is served from the
// next handshake on, without a restart.
type keyPair struct {
	certFile, keyFile string
	log               hclog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	changed [2]time.Time // the files' modification times when read
}

// loadKeyPair reads the pair once, so that a bad pair stops the start
// with a line naming the flag.
func loadKeyPair(certFile, keyFile string, log hclog.Logger) (*keyPair, error) {
	p := &keyPair{certFile: certFile, keyFile: keyFile, log: log}
	if err := p.reload(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *keyPair) modTimes() ([2]time.Time, error) {
	var t [2]time.Time
	for i, f := range []string{p.certFile, p.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return t, err
		}
		t[i] = st.ModTime()
	}
	return t, nil
}

// reload reads the files. Called with mu held, or before p is shared.
func (p *keyPair) reload() error {
	changed, err := p.modTimes()
	if err != nil {
		return fmt.Errorf("--http-cert/--http-key: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	if err != nil {
		return fmt.Errorf("--http-cert %s and --http-key %s: %w", p.certFile, p.keyFile, err)
	}
	p.cert, p.changed = &cert, changed
	return nil
}

// certificate is the current pair. A pair that fails to load (a renewal
// half written) leaves the last good one served, and is tried again at
// the next handshake.
func (p *keyPair) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if changed, err := p.modTimes(); err == nil && changed != p.changed {
		if err := p.reload(); err != nil {
			p.log.Warn("keeping the HTTP port's certificate: its files changed but do not load", "error", err)
		} else {
			p.log.Info("the HTTP port's certificate was read again", "file", p.certFile)
		}
	}
	return p.cert, nil
}

// httpTLS is the HTTP port's TLS configuration: the given pair, or else
// the data dir's CA-issued server certificate (the gRPC port's).
func httpTLS(cfg Config, bundleConfig func() (*tls.Config, error)) (*tls.Config, error) {
	if cfg.HTTPCert == "" && cfg.HTTPKey == "" {
		return bundleConfig()
	}
	if cfg.HTTPCert == "" || cfg.HTTPKey == "" {
		return nil, fmt.Errorf("--http-cert and --http-key go together: give both")
	}
	p, err := loadKeyPair(cfg.HTTPCert, cfg.HTTPKey, cfg.Logger.Named("http-tls"))
	if err != nil {
		return nil, err
	}
	// TLS 1.2 too: forges' webhook senders may not speak 1.3.
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: p.certificate}, nil
}
