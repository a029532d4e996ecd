package node

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/monkeyci/monkeyci/agent"
	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/agent/link"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// A node sweeps what a killed run left, makes the scripts' image, joins
// its coordinator offering its capacity under its labels (the machine's
// arch among them), keeps its identity, and ends once drained: no engine,
// no build, no monkeyci binary.
func TestANodeJoinsOfferingItsCapacityAndEndsOnceDrained(t *testing.T) {
	c := startCoordinator(t, codes.OK)
	fake := &fakeEngine{leftovers: []string{"killed-run-script"}}
	joined := make(chan string, 1)
	n, err := New(Config{
		Link: link.Config{Coordinator: c.addr, JoinToken: "join", Name: "n1", Labels: map[string]string{"os": "linux"},
			StateDir: t.TempDir(), Joined: func(id string) { joined <- id }},
		AgentID:  "node-test-" + t.Name(),
		Capacity: agent.Resources{MilliCPUs: 2000, Memory: 8 << 30},
		Pause:    true,
		Version:  "v-test",
		Runtime:  fake,
		Binary:   fakeBinary(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := fake.removedContainers(); !slices.Equal(got, []string{"killed-run-script"}) {
		t.Errorf("swept %v, want what the killed run left", got)
	}
	ran := make(chan error, 1)
	go func() { ran <- n.Run(context.Background()) }()

	hello := c.hello(t)
	want := &fleet.Hello{
		Protocol: fleet.ProtocolVersion_PROTOCOL_VERSION_1, Name: "n1", Token: "join", Version: "v-test", Pauses: true,
		Labels:   map[string]string{"os": "linux", agent.LabelArch: pipeline.ArchOf(runtime.GOARCH)},
		Capacity: &fleet.Capacity{MilliCpus: 2000, Memory: 8 << 30},
	}
	if !proto.Equal(hello, want) {
		t.Errorf("the node said\n%v\nwant\n%v", hello, want)
	}
	if id := <-joined; id != "agent-1" {
		t.Errorf("joined as %q, want the coordinator's id agent-1", id)
	}

	n.Drain()
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run: %v, want nil once drained", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a drained node with no build did not end within 30 s")
	}
	n.Close()
	if got := fake.importedImages(); len(got) != 1 {
		t.Errorf("images made: %v, want the scripts' one", got)
	}
}

// The first SIGTERM drains a node that runs until signaled: with no build,
// it ends at once, without error.
func TestTheFirstSignalDrainsANode(t *testing.T) {
	c := startCoordinator(t, codes.OK)
	n, err := New(Config{
		Link:     link.Config{Coordinator: c.addr, JoinToken: "join", Name: "n1", StateDir: t.TempDir()},
		AgentID:  "node-test-" + t.Name(),
		Capacity: agent.Resources{MilliCPUs: 1000, Memory: 1 << 30},
		Runtime:  &fakeEngine{},
		Binary:   fakeBinary(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ran := make(chan error, 1)
	go func() { ran <- n.RunUntilSignaled() }()
	c.hello(t) // it runs: the signal is its to catch
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("RunUntilSignaled: %v, want nil once drained", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a signaled node with no build did not end within 30 s")
	}
}

// A coordinator that refuses the join token ends the node with a
// RefusedError, which says what to do.
func TestANodeRefusedByItsCoordinatorEndsSayingWhy(t *testing.T) {
	c := startCoordinator(t, codes.Unauthenticated)
	n, err := New(Config{
		Link:     link.Config{Coordinator: c.addr, JoinToken: "wrong", Name: "n1", StateDir: t.TempDir()},
		AgentID:  "node-test-" + t.Name(),
		Capacity: agent.Resources{MilliCPUs: 1000, Memory: 1 << 30},
		Runtime:  &fakeEngine{},
		Binary:   fakeBinary(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	err = n.Run(context.Background())
	if refused := (*link.RefusedError)(nil); !errors.As(err, &refused) {
		t.Errorf("Run: %v, want a RefusedError", err)
	}
}

// coordinator is the fleet side of a coordinator: it answers each agent's
// Hello with a welcome (or refuses it with its code), then listens until
// the agent leaves.
type coordinator struct {
	fleet.UnimplementedFleetServer
	addr   string
	refuse codes.Code
	hellos chan *fleet.Hello
}

func startCoordinator(t *testing.T, refuse codes.Code) *coordinator {
	t.Helper()
	c := &coordinator{refuse: refuse, hellos: make(chan *fleet.Hello, 8)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.addr = l.Addr().String()
	s := grpc.NewServer()
	fleet.RegisterFleetServer(s, c)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return c
}

func (c *coordinator) Connect(stream fleet.Fleet_ConnectServer) error {
	m, err := stream.Recv()
	if err != nil {
		return err
	}
	c.hellos <- m.GetHello()
	if c.refuse != codes.OK {
		return status.Error(c.refuse, "unknown token")
	}
	welcome := &fleet.Welcome{Id: "agent-1", Credential: "credential"}
	if err := stream.Send(&fleet.CoordinatorMessage{Msg: &fleet.CoordinatorMessage_Welcome{Welcome: welcome}}); err != nil {
		return err
	}
	for { // heartbeats, until the agent leaves
		if _, err := stream.Recv(); err != nil {
			return nil
		}
	}
}

// hello is the first Hello an agent sent.
func (c *coordinator) hello(t *testing.T) *fleet.Hello {
	t.Helper()
	select {
	case h := <-c.hellos:
		return h
	case <-time.After(30 * time.Second):
		t.Fatal("no agent said hello within 30 s")
		return nil
	}
}

// fakeEngine is a container engine that holds only what a killed run of the
// agent left. It does what a node asks of it before any build (sweep,
// the scripts' image, cleanup); the rest of engine.Runtime is nil, and a
// call to it panics.
type fakeEngine struct {
	engine.Runtime
	mu        sync.Mutex
	leftovers []string
	removed   []string
	imported  []string
}

func (e *fakeEngine) ListContainers(context.Context, map[string]string) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.leftovers), nil
}

func (e *fakeEngine) Remove(_ context.Context, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.leftovers = slices.DeleteFunc(e.leftovers, func(l string) bool { return l == id })
	e.removed = append(e.removed, id)
	return nil
}

func (e *fakeEngine) ListVolumes(context.Context, map[string]string) ([]string, error) {
	return nil, nil
}
func (e *fakeEngine) ListNetworks(context.Context, map[string]string) ([]string, error) {
	return nil, nil
}
func (e *fakeEngine) HasImage(context.Context, string) (bool, error) { return false, nil }

func (e *fakeEngine) ImportImage(_ context.Context, ref string, rootfs io.Reader, _ []string) error {
	if _, err := io.Copy(io.Discard, rootfs); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.imported = append(e.imported, ref)
	return nil
}

func (e *fakeEngine) removedContainers() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.removed)
}

func (e *fakeEngine) importedImages() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.imported)
}

// fakeBinary stands for the monkeyci binary in the scripts' image: no
// script runs here.
func fakeBinary(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "monkeyci")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}
