package tlsca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustEnsure(t *testing.T, dir string, hosts ...string) *Bundle {
	t.Helper()
	b, err := Ensure(dir, hosts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setNow moves the package's clock by d for the test.
func setNow(t *testing.T, d time.Duration) {
	t.Helper()
	old := now
	now = func() time.Time { return time.Now().Add(d) }
	t.Cleanup(func() { now = old })
}

// serve accepts TLS connections on loopback with cfg, answering "ok" to
// whoever completes a handshake, and returns the port.
func serve(t *testing.T, network, addr string, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen(network, addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if err := c.(*tls.Conn).Handshake(); err == nil {
					io.WriteString(c, "ok")
				}
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// dial completes a handshake and reads the server's "ok".
func dial(addr string, cfg *tls.Config) (tls.ConnectionState, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		return tls.ConnectionState{}, err
	}
	if string(got) != "ok" {
		return tls.ConnectionState{}, errors.New("server said " + string(got))
	}
	return c.ConnectionState(), nil
}

func TestEnsureCreatesFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "tls")
	b := mustEnsure(t, dir, "ci.example.com", "10.1.2.3")

	for name, mode := range map[string]os.FileMode{
		CAFileName: 0o644, CAKeyFileName: 0o600, ServerFileName: 0o644, ServerKeyFileName: 0o600,
	} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != mode {
			t.Errorf("%s mode = %o, want %o", name, info.Mode().Perm(), mode)
		}
	}
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v (%v), want 0700", info.Mode().Perm(), err)
	}
	if want := filepath.Join(dir, CAFileName); b.CAFile() != want || !filepath.IsAbs(b.CAFile()) {
		t.Errorf("CAFile = %s, want %s", b.CAFile(), want)
	}
	if !bytes.Equal(b.CAPEM(), read(t, b.CAFile())) {
		t.Error("CAPEM differs from the CA file")
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	ca := b.CACert()
	if !ca.IsCA || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("CA certificate is not a CA")
	}
	checkP256(t, ca)
	if d := ca.NotAfter.Sub(ca.NotBefore); d < 10*365*24*time.Hour || d > 10*366*24*time.Hour {
		t.Errorf("CA valid for %v, want 10 years", d)
	}

	leaf := b.ServerCert().Leaf
	checkP256(t, leaf)
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 365*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("server certificate valid for %v, want 1 year", d)
	}
	wantHosts := []string{"10.1.2.3", "127.0.0.1", "::1", "ci.example.com", "localhost"}
	if got := certHosts(leaf); !slices.Equal(got, wantHosts) {
		t.Errorf("server certificate hosts = %v, want %v", got, wantHosts)
	}
	if !slices.Equal(b.Hosts(), wantHosts) {
		t.Errorf("Hosts = %v, want %v", b.Hosts(), wantHosts)
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Error("server certificate lacks server auth")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "ci.example.com"}); err != nil {
		t.Errorf("server certificate does not verify against the CA: %v", err)
	}
}

func checkP256(t *testing.T, c *x509.Certificate) {
	t.Helper()
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("%s: key is %T, want ECDSA P-256", c.Subject.CommonName, c.PublicKey)
	}
}

func TestEnsureTwiceKeepsCAAndServer(t *testing.T) {
	dir := t.TempDir()
	b1 := mustEnsure(t, dir, "ci.example.com")
	ca1, key1 := read(t, filepath.Join(dir, CAFileName)), read(t, filepath.Join(dir, CAKeyFileName))
	srv1 := read(t, filepath.Join(dir, ServerFileName))

	// Same hosts, in another order and spelling: nothing changes.
	b2 := mustEnsure(t, dir, "CI.example.com.", "127.0.0.1", "[::1]")
	if !b1.CACert().Equal(b2.CACert()) {
		t.Error("second Ensure made another CA")
	}
	if !bytes.Equal(ca1, read(t, filepath.Join(dir, CAFileName))) ||
		!bytes.Equal(key1, read(t, filepath.Join(dir, CAKeyFileName))) {
		t.Error("CA files rewritten")
	}
	if !bytes.Equal(srv1, read(t, filepath.Join(dir, ServerFileName))) {
		t.Error("server certificate reissued for the same hosts")
	}

	// Other hosts: a new server certificate, same CA.
	b3 := mustEnsure(t, dir, "ci.example.com", "build.example.org")
	if !b1.CACert().Equal(b3.CACert()) {
		t.Error("host change made another CA")
	}
	if bytes.Equal(srv1, read(t, filepath.Join(dir, ServerFileName))) {
		t.Error("server certificate not reissued for new hosts")
	}
	if !slices.Contains(b3.ServerCert().Leaf.DNSNames, "build.example.org") {
		t.Errorf("new hosts missing: %v", b3.ServerCert().Leaf.DNSNames)
	}

	// Fewer hosts is a change too.
	srv3 := read(t, filepath.Join(dir, ServerFileName))
	b4 := mustEnsure(t, dir)
	if bytes.Equal(srv3, read(t, filepath.Join(dir, ServerFileName))) {
		t.Error("server certificate not reissued for fewer hosts")
	}
	if got := certHosts(b4.ServerCert().Leaf); !slices.Equal(got, []string{"127.0.0.1", "::1", "localhost"}) {
		t.Errorf("hosts = %v", got)
	}
}

func TestEnsureRenewsExpiringServerCert(t *testing.T) {
	dir := t.TempDir()
	b1 := mustEnsure(t, dir)
	srv1 := read(t, filepath.Join(dir, ServerFileName))

	// 300 days on: still 65 days left, kept.
	setNow(t, 300*24*time.Hour)
	mustEnsure(t, dir)
	if !bytes.Equal(srv1, read(t, filepath.Join(dir, ServerFileName))) {
		t.Error("reissued with 65 days left")
	}

	// 340 days on: 25 days left, reissued by the same CA.
	setNow(t, 340*24*time.Hour)
	b2 := mustEnsure(t, dir)
	if bytes.Equal(srv1, read(t, filepath.Join(dir, ServerFileName))) {
		t.Error("not reissued with 25 days left")
	}
	if !b1.CACert().Equal(b2.CACert()) {
		t.Error("renewal made another CA")
	}
	if left := time.Until(b2.ServerCert().Leaf.NotAfter); left < 364*24*time.Hour+340*24*time.Hour {
		t.Errorf("renewed certificate ends in %v", left)
	}
}

func TestServerConfigRenewsWhileRunning(t *testing.T) {
	b := mustEnsure(t, t.TempDir())
	cfg := b.ServerConfig()
	first := b.ServerCert()
	got, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || got != first {
		t.Fatalf("GetCertificate = %v, %v; want the current certificate", got, err)
	}
	setNow(t, 340*24*time.Hour)
	got, err = cfg.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	if got == first || !got.Leaf.NotAfter.After(first.Leaf.NotAfter) {
		t.Error("certificate not renewed when close to expiry")
	}
	if !bytes.Contains(read(t, filepath.Join(b.dir, ServerFileName)), []byte("CERTIFICATE")) {
		t.Error("server.pem missing after renewal")
	}
	onDisk, err := tls.LoadX509KeyPair(filepath.Join(b.dir, ServerFileName), filepath.Join(b.dir, ServerKeyFileName))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk.Certificate[0], got.Certificate[0]) {
		t.Error("renewed certificate not written to disk")
	}
}

func TestHandshake(t *testing.T) {
	dir := t.TempDir()
	b := mustEnsure(t, dir, "ci.example.com")
	port := serve(t, "tcp", "127.0.0.1:0", b.ServerConfig())
	addr := net.JoinHostPort("127.0.0.1", port)

	for _, name := range []string{"localhost", "127.0.0.1", "ci.example.com", ""} {
		cfg, err := ClientConfig(b.CAFile(), name)
		if err != nil {
			t.Fatal(err)
		}
		st, err := dial(addr, cfg)
		if err != nil {
			t.Errorf("server name %q: %v", name, err)
			continue
		}
		if st.Version != tls.VersionTLS13 {
			t.Errorf("version %x, want TLS 1.3", st.Version)
		}
	}

	// In-process clients (monkeyci up).
	if _, err := dial(addr, b.ClientConfig("localhost")); err != nil {
		t.Errorf("Bundle.ClientConfig: %v", err)
	}

	// A new Bundle on the same directory serves a certificate that clients
	// of the first one still trust.
	b2 := mustEnsure(t, dir, "other.example.com")
	port2 := serve(t, "tcp", "127.0.0.1:0", b2.ServerConfig())
	cfg, _ := ClientConfig(b.CAFile(), "other.example.com")
	if _, err := dial(net.JoinHostPort("127.0.0.1", port2), cfg); err != nil {
		t.Errorf("after host change: %v", err)
	}
}

func TestHandshakeIPv6Loopback(t *testing.T) {
	b := mustEnsure(t, t.TempDir())
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	ln.Close()
	port := serve(t, "tcp6", "[::1]:0", b.ServerConfig())
	cfg, err := ClientConfig(b.CAFile(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dial(net.JoinHostPort("::1", port), cfg); err != nil {
		t.Error(err)
	}
}

func TestHandshakeRefused(t *testing.T) {
	b := mustEnsure(t, t.TempDir(), "ci.example.com")
	other := mustEnsure(t, t.TempDir(), "ci.example.com")
	addr := net.JoinHostPort("127.0.0.1", serve(t, "tcp", "127.0.0.1:0", b.ServerConfig()))

	t.Run("another CA", func(t *testing.T) {
		cfg, err := ClientConfig(other.CAFile(), "localhost")
		if err != nil {
			t.Fatal(err)
		}
		_, err = dial(addr, cfg)
		var unknown x509.UnknownAuthorityError
		if !errors.As(err, &unknown) {
			t.Errorf("err = %v, want an unknown authority error", err)
		}
	})
	t.Run("system roots only", func(t *testing.T) {
		_, err := dial(addr, &tls.Config{ServerName: "localhost"})
		if err == nil {
			t.Error("handshake succeeded without the CA")
		}
	})
	t.Run("name not in the certificate", func(t *testing.T) {
		cfg, _ := ClientConfig(b.CAFile(), "evil.example.net")
		_, err := dial(addr, cfg)
		var invalid x509.HostnameError
		if !errors.As(err, &invalid) {
			t.Errorf("err = %v, want a host name error", err)
		}
	})
	t.Run("TLS 1.2 client", func(t *testing.T) {
		cfg, _ := ClientConfig(b.CAFile(), "localhost")
		cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS12, tls.VersionTLS12
		if _, err := dial(addr, cfg); err == nil {
			t.Error("TLS 1.2 handshake succeeded")
		}
	})
}

func TestClientConfig(t *testing.T) {
	b := mustEnsure(t, t.TempDir())
	cfg, err := ClientConfig(b.CAFile(), "ci.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || cfg.ServerName != "ci.example.com" || cfg.RootCAs == nil {
		t.Errorf("config = %+v", cfg)
	}
	if cfg.InsecureSkipVerify {
		t.Error("verification skipped")
	}

	if _, err := ClientConfig(filepath.Join(t.TempDir(), "nope.pem"), ""); err == nil {
		t.Error("missing CA file accepted")
	}
	junk := filepath.Join(t.TempDir(), "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o644)
	if _, err := ClientConfig(junk, ""); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("err = %v, want no PEM certificate", err)
	}
}

func TestKeyModesRestored(t *testing.T) {
	dir := t.TempDir()
	mustEnsure(t, dir)
	for _, name := range []string{CAKeyFileName, ServerKeyFileName} {
		if err := os.Chmod(filepath.Join(dir, name), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mustEnsure(t, dir)
	for _, name := range []string{CAKeyFileName, ServerKeyFileName} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s mode = %o, want 0600", name, info.Mode().Perm())
		}
	}
}

func TestBrokenFiles(t *testing.T) {
	t.Run("CA key without certificate", func(t *testing.T) {
		dir := t.TempDir()
		mustEnsure(t, dir)
		key := read(t, filepath.Join(dir, CAKeyFileName))
		os.Remove(filepath.Join(dir, CAFileName))
		_, err := Ensure(dir, nil)
		if err == nil || !strings.Contains(err.Error(), "both") {
			t.Fatalf("err = %v, want a both-or-neither error", err)
		}
		if !bytes.Equal(key, read(t, filepath.Join(dir, CAKeyFileName))) {
			t.Error("CA key overwritten")
		}
	})
	t.Run("CA certificate without key", func(t *testing.T) {
		dir := t.TempDir()
		mustEnsure(t, dir)
		os.Remove(filepath.Join(dir, CAKeyFileName))
		if _, err := Ensure(dir, nil); err == nil {
			t.Fatal("Ensure succeeded")
		}
	})
	t.Run("CA key of another CA", func(t *testing.T) {
		dir, other := t.TempDir(), t.TempDir()
		mustEnsure(t, dir)
		mustEnsure(t, other)
		os.WriteFile(filepath.Join(dir, CAKeyFileName), read(t, filepath.Join(other, CAKeyFileName)), 0o600)
		if _, err := Ensure(dir, nil); err == nil {
			t.Fatal("mismatched CA key accepted")
		}
	})
	t.Run("server certificate as CA", func(t *testing.T) {
		dir := t.TempDir()
		mustEnsure(t, dir)
		os.WriteFile(filepath.Join(dir, CAFileName), read(t, filepath.Join(dir, ServerFileName)), 0o644)
		os.WriteFile(filepath.Join(dir, CAKeyFileName), read(t, filepath.Join(dir, ServerKeyFileName)), 0o600)
		_, err := Ensure(dir, nil)
		if err == nil || !strings.Contains(err.Error(), "not a CA") {
			t.Fatalf("err = %v, want not a CA", err)
		}
	})
	t.Run("expired CA", func(t *testing.T) {
		dir := t.TempDir()
		mustEnsure(t, dir)
		setNow(t, 11*365*24*time.Hour)
		_, err := Ensure(dir, nil)
		if err == nil || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("err = %v, want expired", err)
		}
	})
	t.Run("garbage server certificate is reissued", func(t *testing.T) {
		dir := t.TempDir()
		b1 := mustEnsure(t, dir)
		os.WriteFile(filepath.Join(dir, ServerFileName), []byte("garbage"), 0o644)
		b2 := mustEnsure(t, dir)
		if !b1.CACert().Equal(b2.CACert()) {
			t.Error("CA replaced")
		}
		if _, err := tls.LoadX509KeyPair(filepath.Join(dir, ServerFileName), filepath.Join(dir, ServerKeyFileName)); err != nil {
			t.Errorf("server files after reissue: %v", err)
		}
	})
	t.Run("server certificate of another CA is reissued", func(t *testing.T) {
		dir, other := t.TempDir(), t.TempDir()
		mustEnsure(t, dir)
		mustEnsure(t, other)
		for _, name := range []string{ServerFileName, ServerKeyFileName} {
			os.WriteFile(filepath.Join(dir, name), read(t, filepath.Join(other, name)), 0o600)
		}
		b := mustEnsure(t, dir)
		roots := x509.NewCertPool()
		roots.AddCert(b.CACert())
		if _, err := b.ServerCert().Leaf.Verify(x509.VerifyOptions{Roots: roots}); err != nil {
			t.Errorf("server certificate not reissued by this CA: %v", err)
		}
	})
	t.Run("invalid host", func(t *testing.T) {
		if _, err := Ensure(t.TempDir(), []string{"host:8080"}); err == nil {
			t.Error("host:port accepted")
		}
	})
}
