// Package packer is the agent's OCI image: agent.pkr.hcl bakes it (Docker,
// the monkeyci binary, the monkeyci-agent unit) and UserData renders the
// cloud-init user data that configures and starts the agent on each new
// instance of the pool.
package packer

import (
	"bytes"
	"crypto/x509"
	_ "embed"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"sort"
	"strings"
	"text/template"
	"unicode"
	"unicode/utf8"
)

// ErrMissing is what UserData wraps when a value every agent needs is
// empty: an instance booted without it could never join.
var ErrMissing = errors.New("required but empty")

//go:embed cloud-init.yaml.tmpl
var cloudInitTemplate string

var userDataTemplate = template.Must(template.New("cloud-init.yaml.tmpl").Funcs(template.FuncMap{
	"env":    envQuote,
	"indent": indent,
}).Parse(cloudInitTemplate))

// UserDataConfig is what every instance of a pool is told. The instance
// adds what only it knows: its OCID and, without Name, its hostname.
type UserDataConfig struct {
	// Coordinator is the coordinator's gRPC address, host:port.
	Coordinator string
	// JoinToken is an agent join token. It goes in a root-only env file.
	JoinToken string
	// CACert is the coordinator's CA, PEM (its data dir's tls/ca.pem).
	CACert string
	// Labels are the agents' labels (the agent's --labels k=v,...).
	Labels map[string]string
	// Name is the agent's name. Leave it empty for a pool: every instance
	// gets the same user data, and empty means each uses its hostname.
	Name string
}

// UserData renders the #cloud-config document of cloud-init.yaml.tmpl for
// c. It refuses what the agent could not start with (no coordinator, token
// or CA: ErrMissing), a CA that is not PEM certificates, and values that
// could not be written safely (control characters, line breaks).
func UserData(c UserDataConfig) ([]byte, error) {
	for _, f := range []struct{ name, value string }{
		{"Coordinator", c.Coordinator}, {"JoinToken", c.JoinToken}, {"CACert", c.CACert},
	} {
		if strings.TrimSpace(f.value) == "" {
			return nil, fmt.Errorf("user data: %s: %w", f.name, ErrMissing)
		}
	}
	ca, err := normalizeCA(c.CACert)
	if err != nil {
		return nil, fmt.Errorf("user data: CACert: %w", err)
	}
	labels, err := formatLabels(c.Labels)
	if err != nil {
		return nil, fmt.Errorf("user data: Labels: %w", err)
	}
	for _, f := range []struct{ name, value string }{
		{"Coordinator", c.Coordinator}, {"JoinToken", c.JoinToken}, {"Labels", labels}, {"Name", c.Name},
	} {
		if err := checkValue(f.value); err != nil {
			return nil, fmt.Errorf("user data: %s: %w", f.name, err)
		}
	}
	var out bytes.Buffer
	err = userDataTemplate.Execute(&out, struct {
		Coordinator, JoinToken, CACert, Labels, Name string
	}{c.Coordinator, c.JoinToken, ca, labels, c.Name})
	if err != nil {
		return nil, fmt.Errorf("user data: %w", err)
	}
	return out.Bytes(), nil
}

// UserDataBase64 is UserData as OCI wants it: the user_data key of an
// instance's metadata holds base64.
func UserDataBase64(c UserDataConfig) (string, error) {
	doc, err := UserData(c)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(doc), nil
}

// normalizeCA returns the certificates of pemText re-encoded: plain base64
// lines, safe in a YAML literal block, and checked here rather than on an
// instance that would never join.
func normalizeCA(pemText string) (string, error) {
	var out bytes.Buffer
	rest := []byte(pemText)
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return "", fmt.Errorf("a %s block, not a CERTIFICATE", block.Type)
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return "", err
		}
		if err := pem.Encode(&out, &pem.Block{Type: block.Type, Bytes: block.Bytes}); err != nil {
			return "", err
		}
	}
	if out.Len() == 0 {
		return "", errors.New("no PEM certificate in it")
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return "", errors.New("text after its last PEM block")
	}
	return out.String(), nil
}

// formatLabels writes labels as the agent's --labels takes them, sorted so
// the same labels always render the same user data.
func formatLabels(labels map[string]string) (string, error) {
	keys := make([]string, 0, len(labels))
	for k, v := range labels {
		// The agent splits on "," and then on the first "=", and trims.
		if k == "" || strings.ContainsAny(k, ",=") || strings.TrimSpace(k) != k {
			return "", fmt.Errorf("key %q: want a non-empty key without \",\", \"=\" or edge spaces", k)
		}
		if strings.Contains(v, ",") || strings.TrimSpace(v) != v {
			return "", fmt.Errorf("%s=%q: want a value without \",\" or edge spaces", k, v)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	kv := make([]string, len(keys))
	for i, k := range keys {
		kv[i] = k + "=" + labels[k]
	}
	return strings.Join(kv, ","), nil
}

// checkValue refuses what neither YAML nor an env file line can hold as is.
func checkValue(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("not valid UTF-8")
	}
	for _, r := range s {
		// Zl and Zp are line breaks to YAML 1.1 (cloud-init's PyYAML); the
		// rest is not printable there.
		if unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp) || r == '\uFEFF' || r == '\uFFFE' || r == '\uFFFF' {
			return fmt.Errorf("character %U in %q: no control characters or line breaks", r, s)
		}
	}
	return nil
}

// envQuote double-quotes s for /etc/monkeyci/agent.env. systemd's
// EnvironmentFile= and a POSIX shell read it alike: within double quotes a
// backslash keeps the next character of `"\$` as is (systemd.exec(5)).
func envQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if strings.ContainsRune("\"\\`$", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// indent prefixes each line of s with n spaces, for a YAML block; the
// template supplies the last line break.
func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	return pad + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+pad)
}
