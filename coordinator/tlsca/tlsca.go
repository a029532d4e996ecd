// Package tlsca gives the coordinator its TLS identity without any setup: on
// first start it makes a certificate authority and a server certificate in
// its data directory, and agents and the admin CLI trust that authority with
// --ca FILE (the ca.pem it wrote).
//
// Files in the directory:
//
//	ca.pem          the CA certificate: what clients are given
//	ca-key.pem      the CA's private key (0600)
//	server.pem      the server certificate, signed by the CA
//	server-key.pem  the server's private key (0600)
//
// Keys are ECDSA P-256. The CA is valid 10 years and is never replaced
// silently (clients trust it); the server certificate is valid 1 year and is
// reissued when it expires within 30 days, when its host names changed, or
// when it does not verify against the CA.
//
// One process owns the directory at a time (the coordinator holds its data
// directory): Ensure does not lock against a concurrent Ensure.
package tlsca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// File names in the directory given to Ensure.
const (
	CAFileName        = "ca.pem"
	CAKeyFileName     = "ca-key.pem"
	ServerFileName    = "server.pem"
	ServerKeyFileName = "server-key.pem"
)

const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 365 * 24 * time.Hour
	renewBefore    = 30 * 24 * time.Hour
	// backdate covers clocks a little behind the coordinator's.
	backdate = time.Hour
)

// DefaultHosts are in every server certificate, so that loopback clients
// (monkeyci up, tests) always verify.
var DefaultHosts = []string{"localhost", "127.0.0.1", "::1"}

// now is the clock; tests move it.
var now = time.Now

// Bundle is the coordinator's CA and server certificate, as loaded or made by
// Ensure. It is safe for concurrent use.
type Bundle struct {
	dir   string
	hosts []string // normalized, sorted, DefaultHosts included

	ca    *x509.Certificate
	caKey crypto.Signer
	caPEM []byte

	mu     sync.Mutex
	server *tls.Certificate // Leaf set
}

// Ensure loads or creates dir/ca.pem, dir/ca-key.pem, dir/server.pem and
// dir/server-key.pem, the server certificate signed by the CA for hosts (DNS
// names and IP addresses; localhost, 127.0.0.1 and ::1 are always added).
//
// A CA found half there (one of its two files), unreadable, not a CA or
// expired is an error: replacing it would break every client that trusts it,
// so that is left to an operator (remove both files). A server certificate
// that is unreadable, expiring within 30 days, for other hosts or not signed
// by the CA is replaced.
func Ensure(dir string, hosts []string) (*Bundle, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	norm, err := normalizeHosts(hosts)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	b := &Bundle{dir: abs, hosts: norm}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if err := b.ensureCA(); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	if err := b.ensureServer(); err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return b, nil
}

// CAFile is the absolute path of the CA certificate, for clients' --ca.
func (b *Bundle) CAFile() string { return filepath.Join(b.dir, CAFileName) }

// CACert is the CA certificate.
func (b *Bundle) CACert() *x509.Certificate { return b.ca }

// CAPEM is the CA certificate in PEM, as in CAFile.
func (b *Bundle) CAPEM() []byte { return slices.Clone(b.caPEM) }

// Hosts are the names and addresses the server certificate is for.
func (b *Bundle) Hosts() []string { return slices.Clone(b.hosts) }

// ServerCert is the current server certificate (Leaf set).
func (b *Bundle) ServerCert() *tls.Certificate {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.server
}

// ServerConfig is the TLS configuration of the coordinator's listeners: the
// server certificate, TLS 1.3 at least. A coordinator that runs for a long
// time gets its certificate reissued (and rewritten to server.pem) when it
// comes within 30 days of expiring.
func (b *Bundle) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return b.current(), nil
		},
	}
}

// ClientConfig is a client configuration that trusts only this bundle's CA,
// for clients in the coordinator's process (monkeyci up).
func (b *Bundle) ClientConfig(serverName string) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(b.ca)
	return clientConfig(pool, serverName)
}

// ClientConfig is the TLS configuration of an agent or admin client: it
// trusts only the CA certificates in caFile (PEM), not the system's roots,
// and speaks TLS 1.3 at least. serverName is the name the server certificate
// must be valid for; empty lets the dialer use the host it dials (gRPC does).
func ClientConfig(caFile string, serverName string) (*tls.Config, error) {
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("tls: reading CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("tls: CA file %s holds no PEM certificate", caFile)
	}
	return clientConfig(pool, serverName), nil
}

func clientConfig(pool *x509.CertPool, serverName string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    pool,
		ServerName: serverName,
	}
}

// current returns the server certificate, reissuing it first when it is
// about to expire. A failed reissue keeps serving the old one.
func (b *Bundle) current() *tls.Certificate {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now().Add(renewBefore).Before(b.server.Leaf.NotAfter) {
		return b.server
	}
	if cert, err := b.issueServer(); err == nil {
		b.server = cert
	}
	return b.server
}

func (b *Bundle) path(name string) string { return filepath.Join(b.dir, name) }

func (b *Bundle) ensureCA() error {
	certPEM, certErr := os.ReadFile(b.path(CAFileName))
	keyPEM, keyErr := os.ReadFile(b.path(CAKeyFileName))
	switch {
	case errors.Is(certErr, os.ErrNotExist) && errors.Is(keyErr, os.ErrNotExist):
		return b.createCA()
	case certErr != nil && !errors.Is(certErr, os.ErrNotExist):
		return certErr
	case keyErr != nil && !errors.Is(keyErr, os.ErrNotExist):
		return keyErr
	case certErr != nil || keyErr != nil:
		return fmt.Errorf("%s and %s must both exist or both be absent; remove the other one to make a new CA (clients will need the new %s)",
			b.path(CAFileName), b.path(CAKeyFileName), CAFileName)
	}
	if err := fixKeyMode(b.path(CAKeyFileName)); err != nil {
		return err
	}
	pair, err := parsePair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("CA in %s: %w", b.dir, err)
	}
	ca := pair.Leaf
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("%s is not a CA certificate", b.path(CAFileName))
	}
	if t := now(); t.After(ca.NotAfter) {
		return fmt.Errorf("the CA certificate %s expired on %s; remove it and %s to make a new CA (clients will need the new %s)",
			b.path(CAFileName), ca.NotAfter.Format(time.DateOnly), CAKeyFileName, CAFileName)
	}
	b.ca, b.caKey, b.caPEM = ca, pair.PrivateKey.(crypto.Signer), certPEM
	return nil
}

func (b *Bundle) createCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := serialNumber()
	if err != nil {
		return err
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			Organization: []string{"MonkeyCI"},
			// The serial's start tells CAs of different coordinators apart.
			CommonName: "MonkeyCI coordinator CA " + serial.Text(16)[:8],
		},
		NotBefore:             t.Add(-backdate),
		NotAfter:              t.Add(caValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The key first: a crash in between leaves a key without a
	// certificate, which the next start reports rather than overwrites.
	if err := writeFile(b.path(CAKeyFileName), keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeFile(b.path(CAFileName), certPEM, 0o644); err != nil {
		return err
	}
	b.ca, b.caKey, b.caPEM = ca, key, certPEM
	return nil
}

func (b *Bundle) ensureServer() error {
	certPEM, certErr := os.ReadFile(b.path(ServerFileName))
	keyPEM, keyErr := os.ReadFile(b.path(ServerKeyFileName))
	if certErr == nil && keyErr == nil {
		if err := fixKeyMode(b.path(ServerKeyFileName)); err != nil {
			return err
		}
		if pair, err := parsePair(certPEM, keyPEM); err == nil && b.serverUsable(pair.Leaf) {
			b.server = pair
			return nil
		}
	}
	cert, err := b.issueServer()
	if err != nil {
		return err
	}
	b.server = cert
	return nil
}

// serverUsable says whether leaf is a server certificate of this CA, for
// exactly b.hosts, valid beyond the renewal margin.
func (b *Bundle) serverUsable(leaf *x509.Certificate) bool {
	t := now()
	if t.Before(leaf.NotBefore) || !t.Add(renewBefore).Before(leaf.NotAfter) {
		return false
	}
	roots := x509.NewCertPool()
	roots.AddCert(b.ca)
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: t,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	return err == nil && slices.Equal(certHosts(leaf), b.hosts)
}

// issueServer makes a new server key and certificate and writes them.
func (b *Bundle) issueServer() (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := serialNumber()
	if err != nil {
		return nil, err
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"MonkeyCI"}, CommonName: "MonkeyCI coordinator"},
		NotBefore:    t.Add(-backdate),
		NotAfter:     t.Add(serverValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(b.ca.NotAfter) {
		tmpl.NotAfter = b.ca.NotAfter
	}
	for _, h := range b.hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, b.ca, key.Public(), b.caKey)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeFile(b.path(ServerKeyFileName), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(b.path(ServerFileName), certPEM, 0o644); err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// normalizeHosts trims, lower-cases DNS names, writes IP addresses in their
// canonical form, adds DefaultHosts, and sorts and deduplicates.
func normalizeHosts(hosts []string) ([]string, error) {
	var out []string
	for _, h := range append(slices.Clone(DefaultHosts), hosts...) {
		h = strings.TrimSpace(h)
		if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
			h = h[1 : len(h)-1]
		}
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			out = append(out, ip.String())
			continue
		}
		if strings.ContainsAny(h, " /:@") {
			return nil, fmt.Errorf("invalid host %q: want a DNS name or an IP address", h)
		}
		out = append(out, strings.ToLower(strings.TrimSuffix(h, ".")))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// certHosts lists a certificate's names and addresses as normalizeHosts does.
func certHosts(c *x509.Certificate) []string {
	var out []string
	for _, n := range c.DNSNames {
		out = append(out, strings.ToLower(n))
	}
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// parsePair parses a PEM certificate and its key, checking that they match.
func parsePair(certPEM, keyPEM []byte) (*tls.Certificate, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	if pair.Leaf == nil {
		if pair.Leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, err
		}
	}
	if _, ok := pair.PrivateKey.(crypto.Signer); !ok {
		return nil, errors.New("private key cannot sign")
	}
	return &pair, nil
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serialNumber() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
}

// fixKeyMode makes a key file found with looser permissions 0600 again.
func fixKeyMode(path string) error {
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	if info.Mode().Perm() != 0o600 {
		return os.Chmod(path, 0o600)
	}
	return nil
}

// writeFile replaces path atomically with data, created with mode perm (the
// temporary file has it from the start: a key is never readable by others,
// not even for a moment).
func writeFile(path string, data []byte, perm os.FileMode) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return os.Chmod(path, perm)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
