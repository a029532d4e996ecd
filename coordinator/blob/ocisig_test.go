package blob

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

// A copy of coordinator/pool/oci's test key and signature check (test
// files are not shared across packages), with Object Storage's exception:
// the SDK does not hash the bodies of PutObject and UploadPart.

// testKey is an API signing key as OCI knows it: tenancy/user/fingerprint
// name the public half, the SDK signs with the private half.
type testKey struct {
	priv                       *rsa.PrivateKey
	pem                        string
	tenancy, user, fingerprint string
}

var keyOnce = sync.OnceValues(func() (*testKey, error) { return newTestKey("ocid1.user.oc1..ci") })

// sharedKey is made once per test binary: RSA key generation is slow.
func sharedKey(t *testing.T) *testKey {
	k, err := keyOnce()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestKey(user string) (*testKey, error) {
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
	return &testKey{
		priv:        priv,
		pem:         string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)})),
		tenancy:     "ocid1.tenancy.oc1..monkeyci",
		user:        user,
		fingerprint: strings.Join(hexes, ":"),
	}, nil
}

func (k *testKey) credentials() common.ConfigurationProvider {
	return common.NewRawConfigurationProvider(k.tenancy, k.user, "us-ashburn-1", k.fingerprint, k.pem, nil)
}

func (k *testKey) keyID() string { return k.tenancy + "/" + k.user + "/" + k.fingerprint }

var authParam = regexp.MustCompile(`(\w+)="([^"]*)"`)

// binaryBody tells the requests whose bodies the SDK sends unhashed:
// PutObject and UploadPart, PUTs under /o/ and /u/.
func binaryBody(r *http.Request) bool {
	return r.Method == http.MethodPut && (strings.Contains(r.URL.Path, "/o/") || strings.Contains(r.URL.Path, "/u/"))
}

// verify checks an OCI request signature (draft-cavage HTTP signatures,
// version 1): the listed headers, the body hash when the body is signed,
// and the RSA signature. body is nil for a binary body, which is not read.
func (k *testKey) verify(r *http.Request, body []byte) error {
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
	case params["keyId"] != k.keyID():
		return fmt.Errorf("keyId %q, want %q", params["keyId"], k.keyID())
	}
	signed := strings.Fields(params["headers"])
	need := []string{"date", "(request-target)", "host"}
	hashed := (r.Method == http.MethodPost || r.Method == http.MethodPut) && !binaryBody(r)
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
	sig, err := base64.StdEncoding.DecodeString(params["signature"])
	if err != nil {
		return fmt.Errorf("signature is not base64: %w", err)
	}
	digest := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	if err := rsa.VerifyPKCS1v15(&k.priv.PublicKey, crypto.SHA256, digest[:], sig); err != nil {
		return fmt.Errorf("signature does not verify: %w", err)
	}
	return nil
}
