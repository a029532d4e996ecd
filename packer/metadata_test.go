package packer

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The metadata block's unit: verified by systemd, before docker and
// required by it, running the script where provision.sh installs it.
func TestMetadataUnitVerify(t *testing.T) {
	const script = "/usr/local/lib/monkeyci/block-metadata.sh"
	verifyUnit(t, "monkeyci-metadata.service", map[string]fileAt{script[1:]: {"#!/bin/sh\n", 0o755}})
	unit, err := os.ReadFile("monkeyci-metadata.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Before=docker.service\n", "RequiredBy=docker.service\n", "Type=oneshot\n", "RemainAfterExit=yes\n",
		"ExecStart=" + script + "\n",
	} {
		if !strings.Contains(string(unit), want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	provision, err := os.ReadFile("provision.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"/tmp/block-metadata.sh " + script, "systemctl enable monkeyci-metadata.service",
		"/tmp/docker-daemon.json /etc/docker/daemon.json",
	} {
		if !strings.Contains(string(provision), want) {
			t.Errorf("provision.sh lacks %q", want)
		}
	}
	template, err := os.ReadFile("agent.pkr.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"block-metadata.sh", "monkeyci-metadata.service", "docker-daemon.json"} {
		if !strings.Contains(string(template), `"${path.root}/`+f+`"`) {
			t.Errorf("agent.pkr.hcl does not upload %s", f)
		}
	}
}

// The script with the real iptables, in a network namespace of its own
// (the machine's firewall is left alone): run twice, before docker made
// DOCKER-USER and after, it leaves one jump per bridge kind ahead of
// docker's RETURN, and a chain that lets DNS through and drops the rest.
func TestBlockMetadataScript(t *testing.T) {
	unshare := requireTool(t, "unshare", "util-linux")
	requireTool(t, "iptables", "iptables")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("a network namespace of its own needs root")
		}
		t.Skip("a network namespace of its own needs root")
	}
	for _, tc := range []struct{ name, before string }{
		{"before docker", ""},
		{"after docker", "iptables -w -N DOCKER-USER && iptables -w -A DOCKER-USER -j RETURN && "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(unshare, "--net", "sh", "-c", tc.before+
				"sh block-metadata.sh && sh block-metadata.sh && iptables -w -S DOCKER-USER && iptables -w -S MONKEYCI-METADATA")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			var user, chain []string
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				switch {
				case strings.HasPrefix(line, "-A DOCKER-USER "):
					user = append(user, line)
				case strings.HasPrefix(line, "-A MONKEYCI-METADATA "):
					chain = append(chain, line)
				}
			}
			want := []string{
				"-A DOCKER-USER -d 169.254.169.254/32 -i br-+ -j MONKEYCI-METADATA",
				"-A DOCKER-USER -d 169.254.169.254/32 -i docker0 -j MONKEYCI-METADATA",
			}
			if tc.before != "" {
				want = append(want, "-A DOCKER-USER -j RETURN")
			}
			if strings.Join(user, "\n") != strings.Join(want, "\n") {
				t.Errorf("DOCKER-USER:\n%s\nwant\n%s", strings.Join(user, "\n"), strings.Join(want, "\n"))
			}
			wantChain := []string{
				"-A MONKEYCI-METADATA -p udp -m udp --dport 53 -j RETURN",
				"-A MONKEYCI-METADATA -p tcp -m tcp --dport 53 -j RETURN",
				"-A MONKEYCI-METADATA -j DROP",
			}
			if strings.Join(chain, "\n") != strings.Join(wantChain, "\n") {
				t.Errorf("MONKEYCI-METADATA:\n%s\nwant\n%s", strings.Join(chain, "\n"), strings.Join(wantChain, "\n"))
			}
		})
	}
}

// The image's docker gives out networks from pools large enough for a
// network per build, clear of docker0's default 172.17.0.0/16.
func TestDockerDaemonPools(t *testing.T) {
	b, err := os.ReadFile("docker-daemon.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Pools []struct {
			Base string `json:"base"`
			Size int    `json:"size"`
		} `json:"default-address-pools"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("docker-daemon.json: %v", err)
	}
	docker0 := netip.MustParsePrefix("172.17.0.0/16")
	networks := 0
	for _, p := range cfg.Pools {
		base, err := netip.ParsePrefix(p.Base)
		if err != nil || p.Size < base.Bits() || p.Size > 30 {
			t.Fatalf("pool %+v: %v", p, err)
		}
		if base.Overlaps(docker0) {
			t.Errorf("pool %s overlaps docker0's %s", base, docker0)
		}
		networks += 1 << (p.Size - base.Bits())
	}
	if networks < 256 {
		t.Errorf("the pools hold %d networks, want at least 256", networks)
	}
}

// The rule attacked with packets: in namespaces of its own, a "container"
// on a bridge named as docker names a build network's reaches a stand-in
// metadata service until block-metadata.sh runs, and then only its DNS
// port; the host still reaches it.
func TestMetadataBlockedFromBridges(t *testing.T) {
	unshare := requireTool(t, "unshare", "util-linux")
	requireTool(t, "ip", "iproute2")
	requireTool(t, "iptables", "iptables")
	requireTool(t, "busybox", "busybox-static")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("network namespaces of its own need root")
		}
		t.Skip("network namespaces of its own need root")
	}
	out, err := exec.Command(unshare, "--net", "--mount", "--propagation", "private", "sh", "testdata/metadata-attack.sh", "./block-metadata.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := `before container 80: metadata
before container 53: resolver
after container 80: none
after container 53: resolver
after host 80: metadata`
	if got := strings.TrimSpace(string(out)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
