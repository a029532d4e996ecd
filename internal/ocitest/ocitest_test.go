package ocitest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/oracle/oci-go-sdk/v65/common"
)

// serve answers 200 to what key verifies, 401 with the reason otherwise.
func serve(t *testing.T, key *Key, unhashed bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if !unhashed {
			body, _ = io.ReadAll(r.Body)
		}
		if err := key.Verify(r, body, unhashed); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// send signs a request for signed with signer (none: unsigned) and sends
// sent instead, if given.
func send(t *testing.T, signer common.HTTPRequestSigner, method, url, signed, sent string) (int, string) {
	req, err := http.NewRequest(method, url, strings.NewReader(signed))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat)) // the SDK's client sets it, not its signer
	if signer != nil {
		if err := signer.Sign(req); err != nil {
			t.Fatal(err)
		}
	}
	if sent != "" {
		req.Body = io.NopCloser(strings.NewReader(sent))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(msg)
}

func TestVerify(t *testing.T) {
	key := SharedKey(t)
	other, err := NewKey(key.User)
	if err != nil {
		t.Fatal(err)
	}
	forged := common.NewRawConfigurationProvider(key.Tenancy, key.User, "us-ashburn-1", key.Fingerprint, other.PEM, nil)
	hashed, unhashed := serve(t, key, false), serve(t, key, true)
	for _, tc := range []struct {
		name               string
		srv                *httptest.Server
		signer             common.HTTPRequestSigner
		method, body, sent string
		want               string // empty: accepted
	}{
		{"GET", hashed, common.DefaultRequestSigner(key.Credentials()), http.MethodGet, "", "", ""},
		{"POST", hashed, common.DefaultRequestSigner(key.Credentials()), http.MethodPost, `{"a":1}`, "", ""},
		{"unsigned", hashed, nil, http.MethodGet, "", "", "no Signature"},
		{"another key", hashed, common.DefaultRequestSigner(forged), http.MethodGet, "", "", "does not verify"},
		{"another body", hashed, common.DefaultRequestSigner(key.Credentials()), http.MethodPost, `{"a":1}`, `{"a":2}`, "x-content-sha256"},
		{"unhashed PUT", unhashed, common.RequestSignerExcludeBody(key.Credentials()), http.MethodPut, "bytes", "", ""},
		{"PUT without its hash", hashed, common.RequestSignerExcludeBody(key.Credentials()), http.MethodPut, "bytes", "", "is not signed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, msg := send(t, tc.signer, tc.method, tc.srv.URL+"/n/ns/b/bucket", tc.body, tc.sent)
			switch {
			case tc.want == "" && status != http.StatusOK:
				t.Errorf("refused: %d %s", status, msg)
			case tc.want != "" && (status != http.StatusUnauthorized || !strings.Contains(msg, tc.want)):
				t.Errorf("got %d %q, want 401 saying %q", status, msg, tc.want)
			}
		})
	}
}
