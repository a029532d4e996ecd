package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// httpsClient trusts roots only, opens a new connection per request (so
// each sees the certificate served then) and follows no redirect.
func httpsClient(roots *x509.CertPool) *http.Client {
	return &http.Client{
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// With --http-tls alone the HTTP port speaks TLS with the data dir's
// CA-issued certificate: the dashboard, webhooks and /metrics; plain HTTP
// gets nothing from it; the session cookie is Secure.
func TestTheHTTPPortServesTLSWithTheDataDirsCA(t *testing.T) {
	srv, err := Start(context.Background(), Config{DataDir: t.TempDir(), GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0", TLS: true, HTTPTLS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	if !srv.HTTPS {
		t.Error("the server does not say its HTTP port speaks TLS")
	}
	roots := x509.NewCertPool()
	roots.AddCert(srv.TLSBundle.CACert())
	hc := httpsClient(roots)
	base := "https://" + srv.HTTPAddr
	for path, want := range map[string]int{"/healthz": http.StatusOK, "/metrics": http.StatusOK, "/webhooks/github": http.StatusMethodNotAllowed, "/builds": http.StatusSeeOther} {
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s over TLS: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s over TLS: %s, want %d", path, resp.Status, want)
		}
	}
	resp, err := hc.PostForm(base+"/login", url.Values{"token": {srv.AdminToken}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cs := resp.Cookies(); resp.StatusCode != http.StatusSeeOther || len(cs) != 1 || !cs[0].Secure {
		t.Errorf("signing in over TLS: %s, cookies %v: want one Secure cookie", resp.Status, resp.Cookies())
	}
	// Plain HTTP gets no page and no cookie.
	resp, err = http.Get("http://" + srv.HTTPAddr + "/healthz")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "ok") {
			t.Errorf("plain HTTP to the TLS port answered %s %q", resp.Status, body)
		}
	}
}

// A given certificate with its chain (Let's Encrypt's fullchain.pem and
// privkey.pem) is served whole, so a client trusting only the root
// verifies it; renewed in place, it is served from the next connection.
func TestTheHTTPPortServesAGivenChainAndReadsItAgain(t *testing.T) {
	dir := t.TempDir()
	root, rootKey := newCA(t, "root", nil, nil)
	inter, interKey := newCA(t, "intermediate", root, rootKey)
	certFile, keyFile := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	first := writeLeaf(t, certFile, keyFile, inter, interKey, time.Now())

	srv, err := Start(context.Background(), Config{DataDir: t.TempDir(), GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
		HTTPTLS: true, HTTPCert: certFile, HTTPKey: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	roots := x509.NewCertPool()
	roots.AddCert(root)
	hc := httpsClient(roots)
	served := func() *x509.Certificate {
		t.Helper()
		resp, err := hc.Get("https://" + srv.HTTPAddr + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz trusting the root alone: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(resp.TLS.PeerCertificates) != 2 {
			t.Fatalf("GET /healthz: %s with %d certificates, want 200 with the leaf and its intermediate", resp.Status, len(resp.TLS.PeerCertificates))
		}
		return resp.TLS.PeerCertificates[0]
	}
	if got := served(); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("served serial %s, want %s", got.SerialNumber, first.SerialNumber)
	}
	// certbot renews in place; a later modification time marks it.
	renewed := writeLeaf(t, certFile, keyFile, inter, interKey, time.Now().Add(time.Minute))
	if got := served(); got.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Errorf("after the renewal the served serial is %s, want the renewed %s", got.SerialNumber, renewed.SerialNumber)
	}
	// A renewal half written keeps the last good certificate served.
	if err := os.WriteFile(keyFile, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	touch(t, keyFile, time.Now().Add(2*time.Minute))
	if got := served(); got.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Errorf("a broken renewal replaced the served certificate: serial %s", got.SerialNumber)
	}
}

// A pair that cannot be served stops the start with a line naming the flags.
func TestABadHTTPKeyPairIsRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCA(t, "ca", nil, nil)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeLeaf(t, certFile, keyFile, ca, caKey, time.Now())
	otherCert, otherKey := filepath.Join(dir, "other.pem"), filepath.Join(dir, "other-key.pem")
	writeLeaf(t, otherCert, otherKey, ca, caKey, time.Now())
	for name, c := range map[string]struct{ cert, key, says string }{
		"missing file":  {filepath.Join(dir, "nope.pem"), keyFile, "--http-cert"},
		"another's key": {certFile, otherKey, "--http-cert"},
		"no key":        {certFile, "", "--http-key"},
		"not PEM":       {keyFile, keyFile, "--http-cert"},
	} {
		_, err := Start(context.Background(), Config{DataDir: t.TempDir(), GRPCListen: "127.0.0.1:0", HTTPListen: "127.0.0.1:0",
			HTTPTLS: true, HTTPCert: c.cert, HTTPKey: c.key})
		if err == nil || !strings.Contains(err.Error(), c.says) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v, want one line naming %s", name, err, c.says)
		}
	}
}

func newCA(t *testing.T, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// writeLeaf writes a certificate for 127.0.0.1 signed by ca, followed by
// ca (a full chain), and its PKCS #8 key, as Let's Encrypt's files are,
// with the modification time mtime.
func writeLeaf(t *testing.T, certFile, keyFile string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, mtime time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "ci.example"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})...)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, chain, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}), 0o600); err != nil {
		t.Fatal(err)
	}
	touch(t, certFile, mtime)
	touch(t, keyFile, mtime)
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func touch(t *testing.T, path string, mtime time.Time) {
	t.Helper()
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}
