package packer

import (
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The firewall's unit: verified by systemd, before docker and required by
// it, running the script where provision.sh installs it.
func TestFirewallUnitVerify(t *testing.T) {
	const script = "/usr/local/lib/monkeyci/firewall.sh"
	verifyUnit(t, "monkeyci-firewall.service", map[string]fileAt{script[1:]: {"#!/bin/sh\n", 0o755}})
	unit, err := os.ReadFile("monkeyci-firewall.service")
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
		"/tmp/firewall.sh " + script, "systemctl enable monkeyci-firewall.service",
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
	for _, f := range []string{"firewall.sh", "monkeyci-firewall.service", "docker-daemon.json"} {
		if !strings.Contains(string(template), `"${path.root}/`+f+`"`) {
			t.Errorf("agent.pkr.hcl does not upload %s", f)
		}
	}
}

// needRoot skips a test that needs network namespaces of its own without
// root, and fails it in CI.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("network namespaces of its own need root")
		}
		t.Skip("network namespaces of its own need root")
	}
}

// The script with the real iptables, in a network namespace of its own
// (the machine's firewall is left alone): run twice, it leaves one jump
// in mangle's FORWARD and its chain as it made it once.
func TestFirewallScriptIsIdempotent(t *testing.T) {
	unshare := requireTool(t, "unshare", "util-linux")
	requireTool(t, "iptables", "iptables")
	needRoot(t)
	out, err := exec.Command(unshare, "--net", "sh", "-c",
		"sh firewall.sh && iptables -w -t mangle -S > /tmp/once.$$ && sh firewall.sh && iptables -w -t mangle -S | diff /tmp/once.$$ - && rm /tmp/once.$$ && iptables -w -t mangle -S").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var jumps, chain []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		switch {
		case strings.HasPrefix(line, "-A FORWARD "):
			jumps = append(jumps, line)
		case strings.HasPrefix(line, "-A MONKEYCI-FIREWALL "):
			chain = append(chain, line)
		}
	}
	if want := []string{"-A FORWARD -j MONKEYCI-FIREWALL"}; !slices.Equal(jumps, want) {
		t.Errorf("mangle FORWARD: %q, want %q", jumps, want)
	}
	if len(chain) == 0 || !strings.Contains(chain[0], "--physdev-is-bridged -j RETURN") || !strings.HasSuffix(chain[len(chain)-1], "-j DROP") {
		t.Errorf("MONKEYCI-FIREWALL:\n%s", strings.Join(chain, "\n"))
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

// The rules attacked with packets, in namespaces of their own: while the
// filter table lets everything through (as in the moments docker puts its
// FORWARD jumps back), containers on bridges named as docker names a build
// network's reach a stand-in metadata service, each other across
// networks, and the outside; after firewall.sh, only the metadata
// service's DNS port, their own network and the outside. The host still
// reaches everything.
func TestFirewallFromBridges(t *testing.T) {
	unshare := requireTool(t, "unshare", "util-linux")
	requireTool(t, "ip", "iproute2")
	requireTool(t, "iptables", "iptables")
	requireTool(t, "busybox", "busybox-static")
	needRoot(t)
	out, err := exec.Command(unshare, "--net", "--mount", "--propagation", "private", "sh", "testdata/firewall-attack.sh", "./firewall.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := `before
c to 169.254.169.254:80: metadata
c to 169.254.169.254:53: resolver
c to 10.8.0.2:80: other-build
d to 10.9.0.2:80: neighbour
c2 to 10.9.0.2:80: neighbour
c to 192.0.2.2:8080: outside
host to 169.254.169.254:80: metadata
host to 10.9.0.2:80: neighbour
after
c to 169.254.169.254:80: none
c to 169.254.169.254:53: resolver
c to 10.8.0.2:80: none
d to 10.9.0.2:80: none
c2 to 10.9.0.2:80: neighbour
c to 192.0.2.2:8080: outside
host to 169.254.169.254:80: metadata
host to 10.9.0.2:80: neighbour`
	var got []string
	for _, line := range strings.Split(string(out), "\n") {
		if line != "" && !strings.HasPrefix(line, "# Warning:") { // iptables-nft beside legacy tables
			got = append(got, line)
		}
	}
	if strings.Join(got, "\n") != want {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
}
