package docker_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/wait"
)

// Capability bits in /proc/PID/status (linux/capability.h).
const (
	capNetRaw = 1 << 13
	capMknod  = 1 << 27
)

func TestConfinedContainerHoldsItsLimits(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	spec := busybox(labels, "sh", "-c", `grep -E '^(NoNewPrivs|CapEff):' /proc/self/status
if mknod /tmp/null c 1 3 2>/dev/null; then echo mknod-worked; fi
id -u`)
	spec.Pids, spec.NoNewPrivileges, spec.CapDrop = 77, true, []string{"NET_RAW", "MKNOD"}
	id, err := e.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Remove(context.Background(), id)
	if err := e.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	info, err := e.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	h := info.HostConfig
	if h.PidsLimit == nil || *h.PidsLimit != 77 {
		t.Errorf("PidsLimit %v, want 77", h.PidsLimit)
	}
	if !slices.Contains(h.SecurityOpt, "no-new-privileges") {
		t.Errorf("SecurityOpt %q lacks no-new-privileges", h.SecurityOpt)
	}
	dropped := []string{}
	for _, c := range h.CapDrop { // the engine writes CAP_MKNOD
		dropped = append(dropped, strings.TrimPrefix(c, "CAP_"))
	}
	if slices.Sort(dropped); !slices.Equal(dropped, []string{"MKNOD", "NET_RAW"}) {
		t.Errorf("CapDrop %q, want MKNOD and NET_RAW", h.CapDrop)
	}
	if len(h.CapAdd) != 0 || h.Privileged {
		t.Errorf("CapAdd %q, privileged %v", h.CapAdd, h.Privileged)
	}
	if info.Config.User != "" {
		t.Errorf("user %q: the image's user is kept, none forced", info.Config.User)
	}
	if exit, err := e.Wait(ctx, id); err != nil || exit.Code != 0 {
		t.Fatalf("%+v %v", exit, err)
	}
	var out strings.Builder
	if err := e.Logs(ctx, id, &out, nil); err != nil {
		t.Fatal(err)
	}
	// Seen from inside: the kernel holds the process to it.
	status := parseStatus(t, out.String())
	if status["NoNewPrivs"] != "1" {
		t.Errorf("NoNewPrivs %q inside the container, want 1", status["NoNewPrivs"])
	}
	caps := hexField(t, status["CapEff"])
	if caps&capNetRaw != 0 || caps&capMknod != 0 {
		t.Errorf("effective capabilities %#x still hold NET_RAW or MKNOD", caps)
	}
	if caps&(1<<0) == 0 { // CAP_CHOWN: the rest of the default set stays
		t.Errorf("effective capabilities %#x lost CHOWN, which docker gives by default", caps)
	}
	if strings.Contains(out.String(), "mknod-worked") {
		t.Error("mknod made a device node")
	}
}

func TestNetworksKeepTheirContainersApart(t *testing.T) {
	t.Parallel()
	dockertest.RequireFirewall(t)
	e, labels, ctx := setup(t)
	netA, netB := labels[dockertest.BuildLabel]+"-a", labels[dockertest.BuildLabel]+"-b"
	for _, n := range []string{netA, netB} {
		if err := e.CreateNetwork(ctx, n, labels); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.CreateNetwork(ctx, netA, labels); err == nil {
		t.Error("a second network of the same name was made")
	}
	server := busybox(labels, "sh", "-c", `mkdir /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www`)
	server.Network, server.Aliases = netA, []string{"server"}
	id, err := e.Create(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	info, err := e.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	ep := info.NetworkSettings.Networks[netA]
	if ep == nil || ep.IPAddress == "" || !slices.Contains(ep.Aliases, "server") {
		t.Fatalf("server's endpoint on %s: %+v", netA, ep)
	}
	waitListening(t, ep.IPAddress+":8080")

	// By name on its own network; neither by name nor by address from another.
	// The server is up (the host reached it): one try that times out is
	// an answer; a name the network does not know fails at once.
	probe := func(network, target string, tries int) string {
		spec := busybox(labels, "sh", "-c", fmt.Sprintf(`for i in $(seq %d); do
	if printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 3 %s 8080 | grep -q hello; then echo reached; exit 0; fi
	sleep 0.2
done
echo unreachable`, tries, target))
		spec.Network = network
		return strings.TrimSpace(run(t, e, ctx, spec).stdout)
	}
	if got := probe(netA, "server", 50); got != "reached" {
		t.Errorf("a container of %s could not reach the server by name: %q", netA, got)
	}
	if got := probe(netB, ep.IPAddress, 1); got != "unreachable" {
		t.Errorf("a container of %s reached the server of %s by address: %q", netB, netA, got)
	}
	if got := probe(netB, "server", 1); got != "unreachable" {
		t.Errorf("a container of %s reached the server of %s by name: %q", netB, netA, got)
	}
	waitListening(t, ep.IPAddress+":8080") // still up: its silence was the network's

	if err := e.RemoveNetwork(ctx, netA); err == nil {
		t.Error("a network in use was removed")
	}
	if err := e.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := e.RemoveNetwork(ctx, netA); err != nil {
			t.Fatal(err)
		}
	}
	left, err := e.ListNetworks(ctx, labels)
	if err != nil || !slices.Equal(left, []string{netB}) {
		t.Errorf("networks left: %q %v, want %s", left, err, netB)
	}
	if _, err := e.ListNetworks(ctx, nil); err == nil {
		t.Error("listing networks by no label was not refused")
	}
}

// waitListening waits until the host reaches addr (the engine's bridges
// are the host's).
func waitListening(t *testing.T, addr string) {
	t.Helper()
	wait.For(t, "something to listen on "+addr, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// parseStatus reads "Name:\tvalue" lines.
func parseStatus(t *testing.T, s string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

func hexField(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		t.Fatalf("capabilities %q: %v", s, err)
	}
	return v
}
