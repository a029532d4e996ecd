// Package ocitest is what the OCI fakes (the pool provider's and the blob
// store's) share: an API signing key and the check of OCI's request
// signatures, so a fake refuses what real OCI would.
package ocitest

import (
	"crypto"
	"crypto/md5"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
)

// Key is an API signing key as OCI knows it: Tenancy/User/Fingerprint
// name the public half, the SDK signs with the private half (PEM).
type Key struct {
	Tenancy, User, Fingerprint string
	PEM                        string
	priv                       *rsa.PrivateKey
}

var shared = sync.OnceValues(func() (*Key, error) { return NewKey("ocid1.user.oc1..ci") })

// SharedKey is made once per test binary: RSA key generation is slow.
func SharedKey(t testing.TB) *Key {
	k, err := shared()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// NewKey is a fresh key for user, in the same tenancy as every other.
func NewKey(user string) (*Key, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	sum := md5.Sum(der) // OCI's key fingerprint
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02x", b)
	}
	return &Key{
		Tenancy:     "ocid1.tenancy.oc1..monkeyci",
		User:        user,
		Fingerprint: strings.Join(hexes, ":"),
		PEM:         string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)})),
		priv:        priv,
	}, nil
}

// Credentials sign with the key.
func (k *Key) Credentials() common.ConfigurationProvider {
	return common.NewRawConfigurationProvider(k.Tenancy, k.User, "us-ashburn-1", k.Fingerprint, k.PEM, nil)
}

// KeyID is how a signature names the key.
func (k *Key) KeyID() string { return k.Tenancy + "/" + k.User + "/" + k.Fingerprint }

var authParam = regexp.MustCompile(`(\w+)="([^"]*)"`)

// Verify checks an OCI request signature (draft-cavage HTTP signatures,
// version 1): the listed headers, the body hash, and the RSA signature.
// A POST or PUT signs its body, unless unhashedBody: the SDK sends some
// bodies (Object Storage's PutObject and UploadPart) unhashed, and body
// is then not looked at.
func (k *Key) Verify(r *http.Request, body []byte, unhashedBody bool) error {
	rest, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Signature ")
	if !ok {
		return errors.New("no Signature authorization")
	}
	params := map[string]string{}
	for _, m := range authParam.FindAllStringSubmatch(rest, -1) {
		params[m[1]] = m[2]
	}
	switch {
	case params["version"] != "1":
		return fmt.Errorf("version %q", params["version"])
	case params["algorithm"] != "rsa-sha256":
		return fmt.Errorf("algorithm %q", params["algorithm"])
	case params["keyId"] != k.KeyID():
		return fmt.Errorf("keyId %q, want %q", params["keyId"], k.KeyID())
	}
	signed := strings.Fields(params["headers"])
	need := []string{"date", "(request-target)", "host"}
	hashed := (r.Method == http.MethodPost || r.Method == http.MethodPut) && !unhashedBody
	if hashed {
		need = append(need, "content-length", "content-type", "x-content-sha256")
	}
	for _, h := range need {
		if !slices.Contains(signed, h) {
			return fmt.Errorf("header %s is not signed (signed: %v)", h, signed)
		}
	}
	date, err := http.ParseTime(r.Header.Get("Date"))
	if err != nil || time.Since(date).Abs() > 5*time.Minute {
		return fmt.Errorf("date %q missing or skewed", r.Header.Get("Date"))
	}
	if hashed {
		sum := sha256.Sum256(body)
		if got := r.Header.Get("X-Content-Sha256"); got != base64.StdEncoding.EncodeToString(sum[:]) {
			return fmt.Errorf("x-content-sha256 %q does not match the body", got)
		}
		if got := r.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) {
			return fmt.Errorf("content-length %q, body has %d bytes", got, len(body))
		}
	}
	return k.checkSignature(r, signed, params["signature"])
}

// checkSignature verifies signature over the signed headers' lines.
func (k *Key) checkSignature(r *http.Request, signed []string, signature string) error {
	lines := make([]string, len(signed))
	for i, h := range signed {
		var v string
		switch h {
		case "(request-target)":
			v = strings.ToLower(r.Method) + " " + r.RequestURI
		case "host":
			v = r.Host
		default:
			v = r.Header.Get(h)
		}
		lines[i] = h + ": " + v
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil {
		return fmt.Errorf("signature is not base64: %w", err)
	}
	digest := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	if err := rsa.VerifyPKCS1v15(&k.priv.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("signature does not verify: %w", err)
	}
	return nil
}
