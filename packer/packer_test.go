package packer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// oddToken has every character the env file quoting must escape, and some
// that YAML or a shell would take for syntax.
const oddToken = `tok"en'with\back$slash` + "`tick`" + ` #hash; x=y {{.}} & | > ${HOME} $(id) %s ü`

// testCA returns a fresh self-signed CA certificate, PEM.
func testCA(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "monkeyci test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// cloudConfig is the part of the user data the tests read.
type cloudConfig struct {
	WriteFiles []struct {
		Path        string `yaml:"path"`
		Owner       string `yaml:"owner"`
		Permissions string `yaml:"permissions"`
		Content     string `yaml:"content"`
	} `yaml:"write_files"`
	Runcmd []string `yaml:"runcmd"`
}

func parseUserData(t *testing.T, doc []byte) (cloudConfig, map[string]int) {
	t.Helper()
	if !bytes.HasPrefix(doc, []byte("#cloud-config\n")) {
		t.Fatalf("user data does not start with #cloud-config:\n%s", doc)
	}
	var cc cloudConfig
	if err := yaml.Unmarshal(doc, &cc); err != nil {
		t.Fatalf("user data is not YAML: %v\n%s", err, doc)
	}
	files := map[string]int{}
	for i, f := range cc.WriteFiles {
		files[f.Path] = i
	}
	return cc, files
}

// sourceEnv reads an env file the way the unit will: systemd's
// EnvironmentFile= double-quoting is POSIX shell's (systemd.exec(5)), so
// sh is the reference parser. Unset variables come back as "<unset>".
func sourceEnv(t *testing.T, path string, names ...string) map[string]string {
	t.Helper()
	script := `. "$1"; shift; for n; do eval "printf '%s\0' \"\${$n-<unset>}\""; done`
	out, err := exec.Command("sh", append([]string{"-c", script, "sh", path}, names...)...).Output()
	if err != nil {
		t.Fatalf("sh could not read %s: %v", path, err)
	}
	values := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(values) != len(names) {
		t.Fatalf("read %d values from %s, want %d: %q", len(values), path, len(names), values)
	}
	env := map[string]string{}
	for i, n := range names {
		env[n] = values[i]
	}
	return env
}

func TestUserData(t *testing.T) {
	ca := testCA(t)
	tests := []struct {
		name   string
		config UserDataConfig
		// The env file before first boot completes it.
		want map[string]string
	}{
		{
			name: "named agent with labels",
			config: UserDataConfig{
				Coordinator: "ci.example.com:7433", JoinToken: "j0in", CACert: ca,
				Labels: map[string]string{"os": "linux", "arch": "amd64", "gpu": ""}, Name: "builder-1",
			},
			want: map[string]string{
				"MONKEYCI_COORDINATOR": "ci.example.com:7433", "MONKEYCI_JOIN_TOKEN": "j0in",
				"MONKEYCI_LABELS": "arch=amd64,gpu=,os=linux", "MONKEYCI_NAME": "builder-1",
			},
		},
		{
			name:   "pool: no name, no labels",
			config: UserDataConfig{Coordinator: "10.0.0.2:7433", JoinToken: "j0in", CACert: ca},
			want: map[string]string{
				"MONKEYCI_COORDINATOR": "10.0.0.2:7433", "MONKEYCI_JOIN_TOKEN": "j0in",
				"MONKEYCI_LABELS": "", "MONKEYCI_NAME": "<unset>",
			},
		},
		{
			name: "odd characters round-trip",
			config: UserDataConfig{
				Coordinator: "ci.example.com:7433", JoinToken: oddToken, CACert: "\r\n" + ca + "\n\n",
				Labels: map[string]string{"team": `a"b'c$d`}, Name: `odd "name" $x`,
			},
			want: map[string]string{
				"MONKEYCI_COORDINATOR": "ci.example.com:7433", "MONKEYCI_JOIN_TOKEN": oddToken,
				"MONKEYCI_LABELS": `team=a"b'c$d`, "MONKEYCI_NAME": `odd "name" $x`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := UserData(tt.config)
			if err != nil {
				t.Fatal(err)
			}
			cc, files := parseUserData(t, doc)

			i, ok := files["/etc/monkeyci/agent.env.part"]
			if !ok {
				t.Fatalf("no env file in write_files:\n%s", doc)
			}
			env := cc.WriteFiles[i]
			if env.Permissions != "0600" || env.Owner != "root:root" {
				t.Errorf("env file is %s %s, want 0600 root:root: it holds the join token", env.Permissions, env.Owner)
			}
			path := filepath.Join(t.TempDir(), "agent.env")
			if err := os.WriteFile(path, []byte(env.Content), 0o600); err != nil {
				t.Fatal(err)
			}
			names := []string{"MONKEYCI_COORDINATOR", "MONKEYCI_JOIN_TOKEN", "MONKEYCI_LABELS", "MONKEYCI_NAME"}
			got := sourceEnv(t, path, names...)
			for _, n := range names {
				if got[n] != tt.want[n] {
					t.Errorf("%s = %q, want %q\nenv file:\n%s", n, got[n], tt.want[n], env.Content)
				}
			}

			i, ok = files["/etc/monkeyci/ca.pem"]
			if !ok {
				t.Fatalf("no CA in write_files:\n%s", doc)
			}
			if f := cc.WriteFiles[i]; f.Permissions != "0644" || f.Content != strings.TrimSpace(ca)+"\n" {
				t.Errorf("ca.pem is %s with\n%q\nwant 0644 with\n%q", f.Permissions, f.Content, ca)
			}

			if len(cc.Runcmd) != 1 {
				t.Fatalf("runcmd has %d entries, want the one script", len(cc.Runcmd))
			}
			for _, want := range []string{
				"curl -sf --max-time 5 -H 'Authorization: Bearer Oracle' http://169.254.169.254/opc/v2/instance/id",
				"mv \"$part\" /etc/monkeyci/agent.env",
				"systemctl start --no-block monkeyci-agent.service",
			} {
				if !strings.Contains(cc.Runcmd[0], want) {
					t.Errorf("runcmd lacks %q:\n%s", want, cc.Runcmd[0])
				}
			}
		})
	}
}

func TestUserDataRefuses(t *testing.T) {
	ca := testCA(t)
	good := UserDataConfig{Coordinator: "ci:7433", JoinToken: "j0in", CACert: ca}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte("x")}))
	tests := []struct {
		name    string
		change  func(*UserDataConfig)
		missing bool   // errors.Is ErrMissing
		want    string // in the message
	}{
		{"no coordinator", func(c *UserDataConfig) { c.Coordinator = "" }, true, "Coordinator"},
		{"no token", func(c *UserDataConfig) { c.JoinToken = "" }, true, "JoinToken"},
		{"no CA", func(c *UserDataConfig) { c.CACert = "" }, true, "CACert"},
		{"blank CA", func(c *UserDataConfig) { c.CACert = " \n" }, true, "CACert"},
		{"CA not PEM", func(c *UserDataConfig) { c.CACert = "not a certificate" }, false, "CACert: no PEM certificate"},
		{"CA is a key", func(c *UserDataConfig) { c.CACert = keyPEM }, false, "CACert: a PRIVATE KEY block"},
		{"CA with junk after", func(c *UserDataConfig) { c.CACert = ca + "junk" }, false, "CACert: text after"},
		{"CA not a certificate", func(c *UserDataConfig) {
			c.CACert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}))
		}, false, "CACert: x509"},
		{"newline in token", func(c *UserDataConfig) { c.JoinToken = "a\nMONKEYCI_NAME=evil" }, false, "JoinToken: character U+000A"},
		{"line separator in name", func(c *UserDataConfig) { c.Name = "a\u2028b" }, false, "Name: character U+2028"},
		{"tab in coordinator", func(c *UserDataConfig) { c.Coordinator = "ci\t:7433" }, false, "Coordinator: character U+0009"},
		{"comma in label", func(c *UserDataConfig) { c.Labels = map[string]string{"os": "linux,arm"} }, false, "Labels: os="},
		{"equals in label key", func(c *UserDataConfig) { c.Labels = map[string]string{"a=b": "c"} }, false, "Labels: key"},
		{"empty label key", func(c *UserDataConfig) { c.Labels = map[string]string{"": "c"} }, false, "Labels: key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.change(&c)
			doc, err := UserData(c)
			if err == nil {
				t.Fatalf("no error; rendered:\n%s", doc)
			}
			if errors.Is(err, ErrMissing) != tt.missing || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q: want it to say %q (ErrMissing: %v)", err, tt.want, tt.missing)
			}
			if _, err64 := UserDataBase64(c); err64 == nil || err64.Error() != err.Error() {
				t.Errorf("UserDataBase64 error %v, want %v", err64, err)
			}
		})
	}
}

func TestUserDataBase64(t *testing.T) {
	c := UserDataConfig{Coordinator: "ci:7433", JoinToken: oddToken, CACert: testCA(t)}
	doc, err := UserData(c)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := UserDataBase64(c)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || !bytes.Equal(dec, doc) {
		t.Fatalf("UserDataBase64 does not decode to UserData (%v)", err)
	}
}

// TestFirstBoot runs the runcmd script as cloud-init would, with its
// /etc/monkeyci moved to a temporary folder and fakes of curl (the
// metadata service), sleep, hostname and systemctl first on PATH.
func TestFirstBoot(t *testing.T) {
	const ocid = "ocid1.instance.oc1.eu-frankfurt-1.abcdefg123"
	tests := []struct {
		name     string
		config   UserDataConfig
		curl     string // the fake curl's body; $n is its call count
		started  bool
		wantName string
	}{
		{
			name:   "metadata service answers on the third try",
			config: UserDataConfig{Coordinator: "ci:7433", JoinToken: oddToken},
			curl:   `[ "$n" -ge 3 ] || exit 22; printf '%s' '` + ocid + `'`,
			// No name given: the hostname.
			started: true, wantName: "inst-abcde-pool",
		},
		{
			name:    "a given name stays",
			config:  UserDataConfig{Coordinator: "ci:7433", JoinToken: "j0in", Name: "builder-1"},
			curl:    `printf '%s' '` + ocid + `'`,
			started: true, wantName: "builder-1",
		},
		{
			name:   "metadata service never answers",
			config: UserDataConfig{Coordinator: "ci:7433", JoinToken: "j0in"},
			curl:   `exit 7`,
		},
		{
			name:   "metadata service answers nonsense",
			config: UserDataConfig{Coordinator: "ci:7433", JoinToken: "j0in"},
			curl:   `printf '%s' 'ocid1.instance.oc1.x"; touch pwned'`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.config.CACert = testCA(t)
			doc, err := UserData(tt.config)
			if err != nil {
				t.Fatal(err)
			}
			cc, files := parseUserData(t, doc)
			dir, bin := t.TempDir(), t.TempDir()
			etc := filepath.Join(dir, "etc-monkeyci")
			if err := os.Mkdir(etc, 0o755); err != nil {
				t.Fatal(err)
			}
			// What cloud-init's write_files did before runcmd.
			part := cc.WriteFiles[files["/etc/monkeyci/agent.env.part"]]
			if err := os.WriteFile(filepath.Join(etc, "agent.env.part"), []byte(part.Content), 0o600); err != nil {
				t.Fatal(err)
			}
			calls := filepath.Join(dir, "calls")
			fakes := map[string]string{
				"curl":      `n=$(($(cat "` + calls + `.curl" 2>/dev/null || echo 0) + 1)); echo $n >"` + calls + `.curl"; ` + tt.curl,
				"sleep":     `:`,
				"hostname":  `echo inst-abcde-pool`,
				"systemctl": `echo "$*" >>"` + calls + `.systemctl"`,
			}
			for name, body := range fakes {
				if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			script := strings.ReplaceAll(cc.Runcmd[0], "/etc/monkeyci", etc)
			cmd := exec.Command("sh", "-c", script)
			cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()

			systemctl, _ := os.ReadFile(calls + ".systemctl")
			envPath := filepath.Join(etc, "agent.env")
			if !tt.started {
				if err == nil {
					t.Errorf("the script succeeded; want it to fail:\n%s", out)
				}
				if len(systemctl) > 0 {
					t.Errorf("systemctl %s: want the agent not started", systemctl)
				}
				if _, err := os.Stat(envPath); err == nil {
					t.Errorf("%s exists: the unit would start without an instance id", envPath)
				}
				return
			}
			if err != nil {
				t.Fatalf("the script failed: %v\n%s", err, out)
			}
			if got := string(systemctl); got != "start --no-block monkeyci-agent.service\n" {
				t.Errorf("systemctl calls %q, want one start", got)
			}
			if _, err := os.Stat(filepath.Join(etc, "agent.env.part")); err == nil {
				t.Error("agent.env.part is left behind")
			}
			info, err := os.Stat(envPath)
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != 0o600 {
				t.Errorf("agent.env has mode %v, want 0600", info.Mode().Perm())
			}
			got := sourceEnv(t, envPath, "MONKEYCI_INSTANCE", "MONKEYCI_NAME", "MONKEYCI_JOIN_TOKEN")
			want := map[string]string{"MONKEYCI_INSTANCE": ocid, "MONKEYCI_NAME": tt.wantName, "MONKEYCI_JOIN_TOKEN": tt.config.JoinToken}
			for n, v := range want {
				if got[n] != v {
					t.Errorf("%s = %q, want %q", n, got[n], v)
				}
			}
		})
	}
}

// requireTool finds an external tool. CI must have it (.ci/run installs
// it), so there a missing tool fails; elsewhere the test skips.
func requireTool(t *testing.T, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found: install Debian's %s package; .ci/run does", name, debianPackage)
	}
	t.Skipf("%s not found: install Debian's %s package to run this test (with CI set it fails)", name, debianPackage)
	return ""
}

// TestPackerValidate runs a full `packer validate` (not -syntax-only): the
// oracle-oci builder's own checks run too, and they need API credentials
// that parse. Validate makes no API call, so a throwaway OCI config file
// and RSA key in a temporary folder, passed as access_cfg_file, are
// enough; HOME points there too so no real ~/.oci/config is read.
func TestPackerValidate(t *testing.T) {
	packerBin := requireTool(t, "packer", "packer")
	dir := t.TempDir()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// Packer 1.6.6's OCI SDK reads PKCS#1 ("RSA PRIVATE KEY") only.
	keyFile := filepath.Join(dir, "oci_api_key.pem")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "oci_config")
	if err := os.WriteFile(config, []byte(`[DEFAULT]
user=ocid1.user.oc1..aaaaaaaatest
tenancy=ocid1.tenancy.oc1..aaaaaaaatest
fingerprint=12:34:56:78:9a:bc:de:f0:12:34:56:78:9a:bc:de:f0
key_file=`+keyFile+`
region=eu-frankfurt-1
`), 0o600); err != nil {
		t.Fatal(err)
	}
	binary := filepath.Join(dir, "monkeyci")
	if err := os.WriteFile(binary, []byte("not really the binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{
		"access_cfg_file":     config,
		"compartment_ocid":    "ocid1.compartment.oc1..aaaaaaaatest",
		"subnet_ocid":         "ocid1.subnet.oc1.eu-frankfurt-1.aaaaaaaatest",
		"availability_domain": "Uocm:EU-FRANKFURT-1-AD-1",
		"base_image_ocid":     "ocid1.image.oc1.eu-frankfurt-1.aaaaaaaatest",
		"monkeyci_binary":     binary,
	}
	// Run from elsewhere: relative paths are from the template, not the cwd.
	template, err := filepath.Abs("agent.pkr.hcl")
	if err != nil {
		t.Fatal(err)
	}
	packer := func(t *testing.T, change map[string]string, args ...string) (string, error) {
		t.Helper()
		for k, v := range vars {
			if _, ok := change[k]; !ok {
				args = append(args, "-var", k+"="+v)
			}
		}
		for k, v := range change {
			args = append(args, "-var", k+"="+v)
		}
		cmd := exec.Command(packerBin, append(args, template)...)
		cmd.Dir = dir
		// No update check (no network), no user's Packer or OCI config.
		cmd.Env = append(os.Environ(), "HOME="+dir, "CHECKPOINT_DISABLE=1", "PACKER_CONFIG_DIR="+dir)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	t.Run("valid", func(t *testing.T) {
		if out, err := packer(t, nil, "validate"); err != nil {
			t.Fatalf("packer validate: %v\n%s", err, out)
		}
	})
	for _, tt := range []struct {
		name   string
		change map[string]string
		want   string
	}{
		{"swapped OCIDs", map[string]string{"subnet_ocid": vars["base_image_ocid"]}, "must be a subnet's OCID"},
		{"no binary", map[string]string{"monkeyci_binary": filepath.Join(dir, "missing")}, filepath.Join(dir, "missing")},
		// A relative path is from the template's folder, like ../bin/monkeyci.
		{"relative binary", map[string]string{"monkeyci_binary": "no/such/monkeyci"}, filepath.Join(filepath.Dir(template), "no/such/monkeyci")},
		{"no OCI key", map[string]string{"access_cfg_file": filepath.Join(dir, "missing")}, "'key_file' must be specified"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, err := packer(t, tt.change, "validate")
			if err == nil || !strings.Contains(out, tt.want) {
				t.Fatalf("packer validate: %v, want a failure saying %q:\n%s", err, tt.want, out)
			}
		})
	}
	t.Run("fmt", func(t *testing.T) {
		out, err := exec.Command(packerBin, "fmt", "-check", "-diff", template).CombinedOutput()
		if err != nil {
			t.Fatalf("packer fmt -check: %v (run packer fmt packer/agent.pkr.hcl)\n%s", err, out)
		}
	})
}

// TestUnitVerify runs systemd-analyze verify on monkeyci-agent.service as
// it is. Verify wants ExecStart's binary and the units it depends on to
// exist, and this machine has no /usr/local/bin/monkeyci (nor, maybe,
// docker.service): so it verifies in a temporary root (--root) holding
// this machine's systemd units, a stub docker.service, an executable
// stand-in for the binary, and the unit. Verify exits 0 on warnings (an
// unknown key, say), so any output fails the test too.
func TestUnitVerify(t *testing.T) {
	unit, err := os.ReadFile("monkeyci-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	verifyUnit(t, "monkeyci-agent.service", map[string]fileAt{"usr/local/bin/monkeyci": {"#!/bin/sh\n", 0o755}})

	// What verify cannot know: the drain and the token's path.
	for _, want := range []string{
		"KillSignal=SIGTERM\n", "KillMode=mixed\n", "TimeoutStopSec=2h\n", "Restart=on-failure\n",
		"ConditionPathExists=/etc/monkeyci/agent.env\n", "EnvironmentFile=/etc/monkeyci/agent.env\n",
		"--instance ${MONKEYCI_INSTANCE}",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	if strings.Contains(string(unit), "TOKEN}") || strings.Contains(string(unit), "--join-token") {
		t.Error("the join token is on the command line; it belongs in the env file")
	}
}

type fileAt struct {
	content string
	mode    os.FileMode
}

// verifyUnit runs systemd-analyze verify on the unit file name of this
// folder, in a temporary root holding this machine's systemd units, a stub
// docker.service, the unit and files (stand-ins for what it runs).
func verifyUnit(t *testing.T, name string, files map[string]fileAt) {
	t.Helper()
	analyze := requireTool(t, "systemd-analyze", "systemd")
	root := t.TempDir()
	units := "/usr/lib/systemd/system"
	if _, err := os.Stat(filepath.Join(units, "multi-user.target")); err != nil {
		t.Fatalf("no systemd units in %s to verify against: %v", units, err)
	}
	if err := os.MkdirAll(filepath.Join(root, "usr/lib/systemd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", units, filepath.Join(root, "usr/lib/systemd/")).CombinedOutput(); err != nil {
		t.Fatalf("copying %s: %v\n%s", units, err, out)
	}
	unit, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]fileAt{
		"etc/systemd/system/" + name:        {string(unit), 0o644},
		"etc/systemd/system/docker.service": {"[Unit]\nDescription=stub\n[Service]\nExecStart=/bin/true\n", 0o644},
	}
	for k, v := range files {
		all[k] = v
	}
	for name, f := range all {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(f.content), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(analyze, "verify", "--root="+root, name).CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Fatalf("systemd-analyze verify %s: %v\n%s", name, err, out)
	}
}
