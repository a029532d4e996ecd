package forge

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
)

// Verify checks the delivery's signature (GitLab: its token) against the
// repository's webhook secret, in constant time:
//
//	GitHub:    X-Hub-Signature-256: "sha256=" + hex(HMAC-SHA256(secret, body))
//	Gitea:     X-Gitea-Signature or X-Forgejo-Signature: hex(HMAC-SHA256(secret, body)),
//	           else X-Hub-Signature-256 as GitHub's
//	GitLab:    X-Gitlab-Token: the secret itself
//	Bitbucket: X-Hub-Signature: "sha256=" + hex(HMAC-SHA256(secret, body))
//
// An empty secret never verifies.
func Verify(kind Kind, h http.Header, body []byte, secret string) error {
	switch kind {
	case GitHub, GitLab, Gitea, Bitbucket:
	default:
		return unknownKind(kind)
	}
	if secret == "" {
		// Else anyone could sign with the empty key.
		return fmt.Errorf("%w: the repository has no webhook secret: set one, at the forge and here", ErrSignature)
	}
	if kind == GitLab {
		token := h.Get("X-Gitlab-Token")
		if token == "" {
			return fmt.Errorf("%w: the X-Gitlab-Token header is missing: set the webhook's secret token at GitLab", ErrUnsigned)
		}
		// Compare digests, so that the time taken does not reveal the
		// secret's length either.
		got, want := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(secret))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			return fmt.Errorf("%w: X-Gitlab-Token is not the repository's webhook secret", ErrSignature)
		}
		return nil
	}
	name, prefix := signatureHeader(kind, h)
	sig := h.Get(name)
	if sig == "" {
		if kind == Gitea {
			name = "X-Gitea-Signature (or X-Forgejo-Signature)"
		}
		return fmt.Errorf("%w: the %s header is missing: set the webhook's secret at the forge", ErrUnsigned, name)
	}
	digits, ok := strings.CutPrefix(sig, prefix)
	got, err := hex.DecodeString(digits)
	if !ok || err != nil {
		return fmt.Errorf("%w: %s is not %shex(HMAC-SHA256(secret, body))", ErrSignature, name, prefix)
	}
	if !hmac.Equal(got, mac(body, secret)) {
		return fmt.Errorf("%w: %s does not match the body and the repository's webhook secret", ErrSignature, name)
	}
	return nil
}

// signatureHeader names the header holding kind's HMAC signature, and the
// prefix before its hex digits.
func signatureHeader(kind Kind, h http.Header) (name, prefix string) {
	switch kind {
	case Gitea:
		// Forgejo sends both of its own and Gitea's; older or proxied
		// deliveries may carry only GitHub's.
		for _, name := range []string{"X-Gitea-Signature", "X-Forgejo-Signature"} {
			if h.Get(name) != "" {
				return name, ""
			}
		}
		if h.Get("X-Hub-Signature-256") != "" {
			return "X-Hub-Signature-256", "sha256="
		}
		return "X-Gitea-Signature", ""
	case Bitbucket:
		return "X-Hub-Signature", "sha256="
	}
	return "X-Hub-Signature-256", "sha256="
}

func mac(body []byte, secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return m.Sum(nil)
}

// Sign sets the header(s) Verify checks, as kind's forge would: for tests
// and fakes. It sets nothing for an unknown kind.
func Sign(kind Kind, h http.Header, body []byte, secret string) {
	sig := hex.EncodeToString(mac(body, secret))
	switch kind {
	case GitHub:
		h.Set("X-Hub-Signature-256", "sha256="+sig)
	case Gitea:
		h.Set("X-Gitea-Signature", sig)
	case GitLab:
		h.Set("X-Gitlab-Token", secret)
	case Bitbucket:
		h.Set("X-Hub-Signature", "sha256="+sig)
	}
}
