package dockerpool

import (
	"slices"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"

	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/coordinator/pool"
)

func testProvider(t *testing.T, cfg Config) *Provider {
	t.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	return &Provider{cfg: cfg, image: "monkeyci/agent:0123456789ab"}
}

func TestSpec(t *testing.T) {
	p := testProvider(t, Config{Pool: "p", Coordinator: "127.0.0.1:7433", JoinToken: "s3cret", CPUs: 1.5, Memory: "4g",
		Labels: "os=linux,big=yes", Pause: true, WorkDir: "/w", DockerSocket: "/run/docker.sock"})
	id := "monkeyci-pool-p-0a1b2c3d"
	spec := p.spec(id, "/w/"+id, false)

	wantCmd := []string{"agent", "--coordinator", "127.0.0.1:7433", "--name", id, "--instance", id, "--pause=true",
		"--state-dir", "/w/" + id + "/state", "--cpus", "1.5", "--memory", "4g", "--labels", "os=linux,big=yes", "--tls=false"}
	if !slices.Equal(spec.Cmd, wantCmd) {
		t.Errorf("cmd = %q\nwant  %q", spec.Cmd, wantCmd)
	}
	if strings.Contains(strings.Join(spec.Cmd, " "), "s3cret") {
		t.Error("the join token is on the command line")
	}
	wantEnv := []string{"MONKEYCI_JOIN_TOKEN=s3cret", "TMPDIR=/w/" + id + "/tmp"}
	if !slices.Equal(spec.Env, wantEnv) {
		t.Errorf("env = %q, want %q", spec.Env, wantEnv)
	}
	wantMounts := []engine.Mount{
		{Source: "/run/docker.sock", Target: "/var/run/docker.sock"},
		{Source: "/w/" + id, Target: "/w/" + id},
	}
	if !slices.Equal(spec.Mounts, wantMounts) {
		t.Errorf("mounts = %+v, want %+v", spec.Mounts, wantMounts)
	}
	if spec.Name != id || spec.Image != "monkeyci/agent:0123456789ab" || spec.Network != "host" || spec.Entrypoint != nil {
		t.Errorf("spec = %+v", spec)
	}
	if spec.Labels[LabelPool] != "p" || len(spec.Labels) != 1 {
		t.Errorf("labels = %v", spec.Labels)
	}
}

func TestSpecTLSAndCerts(t *testing.T) {
	p := testProvider(t, Config{Pool: "p", Coordinator: "ci:7433", JoinToken: "t", TLS: true, CAFile: "/data/tls/ca.pem", WorkDir: "/w"})
	spec := p.spec("monkeyci-pool-p-0a1b2c3d", "/w/monkeyci-pool-p-0a1b2c3d", true)
	if !slices.Contains(spec.Cmd, "--ca") || slices.Contains(spec.Cmd, "--tls=false") {
		t.Errorf("cmd = %q", spec.Cmd)
	}
	if i := slices.Index(spec.Cmd, "--ca"); spec.Cmd[i+1] != caInContainer {
		t.Errorf("--ca %s, want %s", spec.Cmd[i+1], caInContainer)
	}
	for _, want := range []engine.Mount{
		{Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"},
		{Source: "/data/tls/ca.pem", Target: caInContainer, ReadOnly: true},
		{Source: hostCerts, Target: hostCerts, ReadOnly: true},
	} {
		if !slices.Contains(spec.Mounts, want) {
			t.Errorf("mount %+v missing from %+v", want, spec.Mounts)
		}
	}
	for _, arg := range []string{"--cpus", "--memory", "--labels"} {
		if slices.Contains(spec.Cmd, arg) {
			t.Errorf("%s given though not set: %q", arg, spec.Cmd)
		}
	}
}

func TestOwns(t *testing.T) {
	p := testProvider(t, Config{Pool: "a", WorkDir: "/w"})
	id, err := p.newID()
	if err != nil {
		t.Fatal(err)
	}
	if !p.owns(id) {
		t.Errorf("a new id %s is not owned", id)
	}
	for _, other := range []string{"", "monkeyci-pool-a-", "monkeyci-pool-a-b-0a1b2c3d", "monkeyci-pool-a-0a1b2c3", "monkeyci-pool-a-0a1b2c3x",
		"monkeyci-pool-a-../../x", "monkeyci-pool-b-0a1b2c3d", "some-container"} {
		if p.owns(other) {
			t.Errorf("owns(%q)", other)
		}
	}
}

func TestPhaseOf(t *testing.T) {
	for state, want := range map[container.ContainerState]pool.Phase{
		container.StateCreated: pool.Starting, container.StateRestarting: pool.Starting,
		container.StateRunning: pool.Running, container.StatePaused: pool.Running,
		container.StateExited: pool.Stopping, container.StateDead: pool.Stopping, container.StateRemoving: pool.Stopping,
	} {
		if got := phaseOf(string(state)); got != want {
			t.Errorf("phaseOf(%s) = %s, want %s", state, got, want)
		}
	}
}

func TestConfigRefused(t *testing.T) {
	// An engine that is never called: validation does not reach it.
	type engine struct{ Engine }
	ok := Config{Engine: engine{}, Pool: "p", Coordinator: "c:1", JoinToken: "t", WorkDir: "/w"}
	if base, err := ok.withDefaults(); err != nil || base.validate() != nil {
		t.Fatalf("the base config is refused: %v %v", err, base.validate())
	}
	for name, tc := range map[string]struct {
		edit func(*Config)
		want string
	}{
		"no engine":       {func(c *Config) { c.Engine = nil }, "engine"},
		"bad pool":        {func(c *Config) { c.Pool = "a/b" }, "pool name"},
		"no coordinator":  {func(c *Config) { c.Coordinator = "" }, "coordinator"},
		"no token":        {func(c *Config) { c.JoinToken = "" }, "join token"},
		"TLS without CA":  {func(c *Config) { c.TLS = true }, "CA file"},
		"relative CA":     {func(c *Config) { c.TLS, c.CAFile = true, "ca.pem" }, "absolute"},
		"no work dir":     {func(c *Config) { c.WorkDir = "" }, "work dir"},
		"long work dir":   {func(c *Config) { c.WorkDir = "/" + strings.Repeat("x", 60) }, "too long"},
		"negative CPUs":   {func(c *Config) { c.CPUs = -1 }, "CPUs"},
		"relative socket": {func(c *Config) { c.DockerSocket = "docker.sock" }, "socket"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			cfg, err := cfg.withDefaults()
			if err == nil {
				err = cfg.validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestLoopbackIfWildcard(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:7433": "127.0.0.1:7433", "[::]:7433": "127.0.0.1:7433", ":7433": "127.0.0.1:7433",
		"127.0.0.1:7433": "127.0.0.1:7433", "ci.example.com:7433": "ci.example.com:7433", "[::1]:7433": "[::1]:7433",
	} {
		if got := loopbackIfWildcard(in); got != want {
			t.Errorf("loopbackIfWildcard(%s) = %s, want %s", in, got, want)
		}
	}
}
