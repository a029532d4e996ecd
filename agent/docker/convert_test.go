package docker

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/mount"

	"github.com/monkeyci/monkeyci/agent/engine"
)

func TestToContainerConfigFull(t *testing.T) {
	spec := engine.ContainerSpec{
		Name:       "job-1",
		Image:      "monkeyci/busybox:latest",
		Entrypoint: []string{"/bin/sh", "-c"},
		Cmd:        []string{"echo hi"},
		Env:        []string{"A=1", "B=x=y", "EMPTY="},
		WorkDir:    "/workspace/src",
		Labels:     map[string]string{"io.monkeyci.build": "b1", "io.monkeyci.role": "job"},
		Mounts: []engine.Mount{
			{Volume: "ws-b1", Target: "/workspace"},
			{Source: "/var/lib/monkeyci/b1/wrapper", Target: "/monkeyci", ReadOnly: true},
		},
		NanoCPUs: 1_500_000_000,
		Memory:   2 << 30,
		Network:  "none",
	}
	cfg, host, err := toContainerConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Image != spec.Image || cfg.WorkingDir != spec.WorkDir {
		t.Errorf("image/workdir: %q %q", cfg.Image, cfg.WorkingDir)
	}
	if !reflect.DeepEqual([]string(cfg.Entrypoint), spec.Entrypoint) || !reflect.DeepEqual([]string(cfg.Cmd), spec.Cmd) {
		t.Errorf("entrypoint/cmd: %q %q", cfg.Entrypoint, cfg.Cmd)
	}
	if !reflect.DeepEqual(cfg.Env, spec.Env) || !reflect.DeepEqual(cfg.Labels, spec.Labels) {
		t.Errorf("env/labels: %q %v", cfg.Env, cfg.Labels)
	}
	if cfg.Tty || cfg.OpenStdin || cfg.AttachStdin {
		t.Error("a job container has no tty and no stdin (logs are demultiplexed)")
	}
	want := []mount.Mount{
		{Type: mount.TypeVolume, Source: "ws-b1", Target: "/workspace", VolumeOptions: &mount.VolumeOptions{NoCopy: true}},
		{Type: mount.TypeBind, Source: "/var/lib/monkeyci/b1/wrapper", Target: "/monkeyci", ReadOnly: true},
	}
	if !reflect.DeepEqual(host.Mounts, want) {
		t.Errorf("mounts:\n got %+v\nwant %+v", host.Mounts, want)
	}
	if len(host.Binds) != 0 {
		t.Errorf("binds should not be used: %v", host.Binds)
	}
	if host.NanoCPUs != spec.NanoCPUs || host.Memory != spec.Memory || host.MemorySwap != spec.Memory {
		t.Errorf("resources: cpus %d memory %d swap %d", host.NanoCPUs, host.Memory, host.MemorySwap)
	}
	if host.NetworkMode != "none" {
		t.Errorf("network %q", host.NetworkMode)
	}
	if host.AutoRemove || host.Privileged {
		t.Error("containers must not auto-remove (their exit would be lost) nor be privileged")
	}
}

func TestToContainerConfigDefaults(t *testing.T) {
	cfg, host, err := toContainerConfig(engine.ContainerSpec{Image: "img"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Entrypoint != nil || cfg.Cmd != nil || cfg.Labels != nil {
		t.Errorf("unset fields must stay unset: %#v", cfg)
	}
	if host.NetworkMode != "" || host.NanoCPUs != 0 || host.Memory != 0 || host.MemorySwap != 0 || host.PidsLimit != nil {
		t.Errorf("no limits and the default network expected: %#v", host.Resources)
	}
	if host.SecurityOpt != nil || host.CapDrop != nil {
		t.Errorf("no confinement asked, none expected: %q %q", host.SecurityOpt, host.CapDrop)
	}
}

func TestConfinementReachesHostConfig(t *testing.T) {
	spec := engine.ContainerSpec{Image: "img", Pids: 64, NoNewPrivileges: true, CapDrop: []string{"NET_RAW", "MKNOD"}}
	cfg, host, err := toContainerConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	if host.PidsLimit == nil || *host.PidsLimit != 64 {
		t.Errorf("PidsLimit %v", host.PidsLimit)
	}
	if !slices.Equal(host.SecurityOpt, []string{"no-new-privileges"}) || !slices.Equal([]string(host.CapDrop), spec.CapDrop) {
		t.Errorf("SecurityOpt %q CapDrop %q", host.SecurityOpt, host.CapDrop)
	}
	if cfg.User != "" || len(host.CapAdd) != 0 || host.Privileged {
		t.Errorf("user %q, CapAdd %q, privileged %v: the image's user and no more than the default set", cfg.User, host.CapAdd, host.Privileged)
	}
	spec.CapDrop[0] = "changed"
	if host.CapDrop[0] != "NET_RAW" {
		t.Error("CapDrop shares the spec's slice")
	}
}

func TestToNetworkingConfig(t *testing.T) {
	net, err := toNetworkingConfig(engine.ContainerSpec{Network: "build-net", Aliases: []string{"db"}})
	if err != nil {
		t.Fatal(err)
	}
	if ep := net.EndpointsConfig["build-net"]; ep == nil || !slices.Equal(ep.Aliases, []string{"db"}) || len(net.EndpointsConfig) != 1 {
		t.Errorf("endpoints %+v", net.EndpointsConfig)
	}
	if net, err := toNetworkingConfig(engine.ContainerSpec{Network: "build-net"}); net != nil || err != nil {
		t.Errorf("no aliases: %+v %v, want nothing", net, err)
	}
	// The engine's own networks take no aliases: said here, not by the engine.
	for _, mode := range []string{"", "default", "bridge", "none", "host", "container:x"} {
		if _, err := toNetworkingConfig(engine.ContainerSpec{Network: mode, Aliases: []string{"db"}}); err == nil || !strings.Contains(err.Error(), "aliases") {
			t.Errorf("network %q with aliases: %v", mode, err)
		}
	}
}

// The engine replaces a null entrypoint by the image's and keeps an empty
// list: the JSON sent must tell them apart.
func TestEntrypointNilKeepsEmptyClears(t *testing.T) {
	for _, tc := range []struct {
		name       string
		entrypoint []string
		want       string
	}{
		{"nil keeps the image's", nil, `"Entrypoint":null`},
		{"empty clears", []string{}, `"Entrypoint":[]`},
		{"set", []string{"/x"}, `"Entrypoint":["/x"]`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, err := toContainerConfig(engine.ContainerSpec{Image: "img", Entrypoint: tc.entrypoint})
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), tc.want) {
				t.Errorf("got %s, want it to contain %s", b, tc.want)
			}
		})
	}
}

func TestToContainerConfigCopies(t *testing.T) {
	spec := engine.ContainerSpec{
		Image:      "img",
		Entrypoint: []string{"a"},
		Cmd:        []string{"b"},
		Env:        []string{"C=1"},
		Labels:     map[string]string{"d": "1"},
	}
	cfg, _, err := toContainerConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Entrypoint[0], cfg.Cmd[0], cfg.Env[0], cfg.Labels["d"] = "x", "x", "x", "x"
	if spec.Entrypoint[0] != "a" || spec.Cmd[0] != "b" || spec.Env[0] != "C=1" || spec.Labels["d"] != "1" {
		t.Errorf("the conversion shares memory with the spec: %+v", spec)
	}
}

func TestToContainerConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec engine.ContainerSpec
		want string
	}{
		{"no image", engine.ContainerSpec{}, "no image"},
		{"volume and source", engine.ContainerSpec{Image: "i", Mounts: []engine.Mount{{Volume: "v", Source: "/s", Target: "/t"}}}, "both volume"},
		{"neither", engine.ContainerSpec{Image: "i", Mounts: []engine.Mount{{Target: "/t"}}}, "neither volume nor source"},
		{"relative target", engine.ContainerSpec{Image: "i", Mounts: []engine.Mount{{Volume: "v", Target: "t"}}}, "not an absolute path"},
		{"no target", engine.ContainerSpec{Image: "i", Mounts: []engine.Mount{{Volume: "v"}}}, "not an absolute path"},
		{"relative source", engine.ContainerSpec{Image: "i", Mounts: []engine.Mount{{Source: "s", Target: "/t"}}}, "bind source"},
		{"relative work dir", engine.ContainerSpec{Image: "i", WorkDir: "src"}, "work dir"},
		{"env without name", engine.ContainerSpec{Image: "i", Env: []string{"=x"}}, "has no name"},
		{"negative cpus", engine.ContainerSpec{Image: "i", NanoCPUs: -1}, "NanoCPUs"},
		{"negative memory", engine.ContainerSpec{Image: "i", Memory: -1}, "Memory"},
		{"negative pids", engine.ContainerSpec{Image: "i", Pids: -1}, "Pids"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := toContainerConfig(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestLabelFilters(t *testing.T) {
	f, err := labelFilters(map[string]string{"io.monkeyci.build": "b1", "io.monkeyci.role": "job"})
	if err != nil {
		t.Fatal(err)
	}
	got := f.Get("label") // from a map: in no order
	slices.Sort(got)
	want := []string{"io.monkeyci.build=b1", "io.monkeyci.role=job"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := labelFilters(nil); err == nil {
		t.Error("an empty label set must be refused")
	}
	if _, err := labelFilters(map[string]string{"": "x"}); err == nil {
		t.Error("an empty label name must be refused")
	}
}

func TestNormalizeRef(t *testing.T) {
	for in, want := range map[string]string{
		"busybox":                 "docker.io/library/busybox:latest",
		"busybox:x":               "docker.io/library/busybox:x",
		"monkeyci/busybox:latest": "docker.io/monkeyci/busybox:latest",
		"registry.local:5000/a/b": "registry.local:5000/a/b:latest",
	} {
		got, err := normalizeRef(in)
		if err != nil || got.String() != want {
			t.Errorf("normalizeRef(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := normalizeRef("Bad Ref"); err == nil {
		t.Error("a bad reference must be refused")
	}
}

func TestEntrypointChange(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"/monkeyci"}, `ENTRYPOINT ["/monkeyci"]`},
		{[]string{"/monkeyci", "agent", "--x=<a&b>", `q"uote`}, `ENTRYPOINT ["/monkeyci","agent","--x=<a&b>","q\"uote"]`},
		{[]string{}, `ENTRYPOINT []`},
	} {
		got, err := entrypointChange(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("entrypointChange(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestDrainJSONMessages(t *testing.T) {
	ok := `{"status":"Pulling"}` + "\n" + `{"status":"sha256:abc"}` + "\n"
	if err := drainJSONMessages(strings.NewReader(ok)); err != nil {
		t.Errorf("clean stream: %v", err)
	}
	bad := `{"status":"Pulling"}` + "\n" + `{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}` + "\n"
	if err := drainJSONMessages(strings.NewReader(bad)); err == nil || err.Error() != "manifest unknown" {
		t.Errorf("error in stream: got %v", err)
	}
	if err := drainJSONMessages(strings.NewReader(`{"error":"old style"}`)); err == nil || err.Error() != "old style" {
		t.Errorf("old-style error: got %v", err)
	}
	if err := drainJSONMessages(strings.NewReader(`{"status":`)); err == nil {
		t.Error("a cut stream must be an error")
	}
}

func TestImageNotFoundError(t *testing.T) {
	cause := errors.New("dial tcp: lookup registry-1.docker.io: no such host")
	err := error(&imageNotFoundError{ref: "busybox:x", err: cause})
	if !errors.Is(err, engine.ErrImageNotFound) || !errors.Is(err, cause) {
		t.Error("errors.Is must find both the sentinel and the cause")
	}
	want := "image busybox:x is not present locally and could not be pulled: dial tcp: lookup registry-1.docker.io: no such host"
	if err.Error() != want {
		t.Errorf("got %q", err.Error())
	}
}

func TestShortID(t *testing.T) {
	id := strings.Repeat("0123456789abcdef", 4)
	if shortID(id) != "0123456789ab" {
		t.Error(shortID(id))
	}
	if shortID("job-1") != "job-1" || shortID(strings.Repeat("x", 64)) != strings.Repeat("x", 64) {
		t.Error("names must pass unchanged")
	}
}
