package docker_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/agent/docker"
	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/wait"
)

// setup returns an engine, a label set unique to the test (whatever carries
// it is removed at the end) and a context that bounds the test.
func setup(t testing.TB) (*docker.Engine, map[string]string, context.Context) {
	t.Helper()
	e := dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	labels := dockertest.Labels(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return e, labels, ctx
}

// with returns labels plus extra ones.
func with(labels map[string]string, kv ...string) map[string]string {
	out := maps.Clone(labels)
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func busybox(labels map[string]string, cmd ...string) engine.ContainerSpec {
	return engine.ContainerSpec{Image: dockertest.Busybox, Cmd: cmd, Labels: labels, Network: "none"}
}

type result struct {
	exit           engine.Exit
	stdout, stderr string
}

// run creates, starts, waits for, reads the logs of and removes a container.
func run(t *testing.T, e *docker.Engine, ctx context.Context, spec engine.ContainerSpec) result {
	t.Helper()
	id, err := e.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.Remove(context.Background(), id); err != nil {
			t.Error(err)
		}
	}()
	if err := e.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	exit, err := e.Wait(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := e.Logs(ctx, id, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	return result{exit: exit, stdout: stdout.String(), stderr: stderr.String()}
}

func TestLifecycleWithVolumeAndBindMounts(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	vol := labels[dockertest.BuildLabel] + "-ws"
	if err := e.CreateVolume(ctx, vol, labels); err != nil {
		t.Fatal(err)
	}
	in, out := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(in, "in.txt"), []byte("from host"), 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := []engine.Mount{
		{Volume: vol, Target: "/ws"},
		{Source: in, Target: "/in", ReadOnly: true},
		{Source: out, Target: "/out"},
	}

	spec := busybox(labels, "sh", "-c", `set -e
cat /in/in.txt > /ws/copied
echo made > /ws/made
echo out > /out/out.txt
if touch /in/x 2>/dev/null; then echo "read-only mount is writable"; exit 9; fi`)
	spec.Mounts = mounts
	if r := run(t, e, ctx, spec); r.exit.Code != 0 {
		t.Fatalf("first container: %+v", r)
	}

	// The volume outlives the container; a second one reads what the first left.
	spec = busybox(labels, "sh", "-c", `test "$(cat /ws/copied)" = "from host" && test "$(cat /ws/made)" = made`)
	spec.Mounts = mounts
	if r := run(t, e, ctx, spec); r.exit.Code != 0 {
		t.Fatalf("second container did not find the volume's files: %+v", r)
	}
	if b, err := os.ReadFile(filepath.Join(out, "out.txt")); err != nil || string(b) != "out\n" {
		t.Errorf("bind mount: %q, %v", b, err)
	}

	if err := e.RemoveVolume(ctx, vol); err != nil {
		t.Fatal(err)
	}
	if err := e.RemoveVolume(ctx, vol); err != nil {
		t.Errorf("removing a removed volume: %v", err)
	}
	if names, err := e.ListVolumes(ctx, labels); err != nil || len(names) != 0 {
		t.Errorf("volumes left: %v, %v", names, err)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	for _, code := range []int{0, 1, 3, 42, 255} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			r := run(t, e, ctx, busybox(labels, "sh", "-c", fmt.Sprintf("exit %d", code)))
			if r.exit != (engine.Exit{Code: code}) {
				t.Errorf("got %+v, want code %d", r.exit, code)
			}
		})
	}
}

func TestEnvWorkDirAndLogs(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	spec := busybox(labels, "sh", "-c", `echo "$FOO|$EMPTY|$(pwd)"; echo to-stderr >&2`)
	spec.Env = []string{"FOO=bar baz", "EMPTY="}
	spec.WorkDir = "/work/here" // made by the engine
	r := run(t, e, ctx, spec)
	if r.exit.Code != 0 || r.stdout != "bar baz||/work/here\n" || r.stderr != "to-stderr\n" {
		t.Errorf("got %+v", r)
	}
}

// Logs follows a running container until it exits.
func TestLogsFollow(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	id, err := e.Create(ctx, busybox(labels, "sh", "-c", "echo a; sleep 0.3; echo b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := e.Logs(ctx, id, &out, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != "a\nb\n" {
		t.Errorf("got %q", out.String())
	}
}

func TestResourceLimits(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	spec := busybox(labels, "sh", "-c", `
if [ -f /sys/fs/cgroup/cpu.max ]; then # cgroup v2
	cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/memory.max
else
	echo "$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
	cat /sys/fs/cgroup/memory/memory.limit_in_bytes
fi`)
	spec.NanoCPUs = 500_000_000
	spec.Memory = 64 << 20
	id, err := e.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if h := info.HostConfig; h.NanoCPUs != spec.NanoCPUs || h.Memory != spec.Memory || h.MemorySwap != spec.Memory {
		t.Errorf("inspect: cpus %d memory %d swap %d", h.NanoCPUs, h.Memory, h.MemorySwap)
	}
	if err := e.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if exit, err := e.Wait(ctx, id); err != nil || exit.Code != 0 {
		t.Fatalf("%+v %v", exit, err)
	}
	var out strings.Builder
	if err := e.Logs(ctx, id, &out, nil); err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(out.String()); !slices.Equal(got, []string{"50000", "100000", "67108864"}) {
		t.Errorf("cgroup limits inside the container: %q", out.String())
	}
}

func TestOOMKilled(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	spec := busybox(labels, "sh", "-c", `x=$(head -c 200000000 /dev/zero | tr '\0' a); echo ${#x}`)
	spec.Memory = 16 << 20
	r := run(t, e, ctx, spec)
	if !r.exit.OOMKilled {
		t.Errorf("got %+v, want OOMKilled", r)
	}
}

func TestPauseUnpause(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	id, err := e.Create(ctx, busybox(labels, "sleep", "60"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Pause(ctx, id); err == nil {
		t.Error("pausing a created container must fail")
	}
	if err := e.Unpause(ctx, id); err != nil {
		t.Errorf("unpausing a container that is not paused: %v", err)
	}
	if err := e.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	// The engine updates the state it reports from containerd's event,
	// a moment after the pause or unpause call returns: wait for it.
	state := func(want string) {
		t.Helper()
		var got string
		var err error
		if !wait.Poll(wait.Bound, func() bool {
			got, err = e.State(ctx, id)
			return err == nil && got == want
		}) {
			t.Errorf("state %q, %v; want %q", got, err, want)
		}
	}
	state("running")
	for range 2 { // idempotent
		if err := e.Pause(ctx, id); err != nil {
			t.Fatal(err)
		}
		state("paused")
	}
	for range 2 {
		if err := e.Unpause(ctx, id); err != nil {
			t.Fatal(err)
		}
		state("running")
	}
	// Remove kills a paused container too.
	if err := e.Pause(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := e.Remove(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.State(ctx, id); !errors.Is(err, docker.ErrContainerNotFound) {
		t.Errorf("state of a removed container: %v", err)
	}
}

func TestWaitBeforeStartAndAfterExit(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)

	// Before start: the waiter must not miss an exit that follows at once.
	id, err := e.Create(ctx, busybox(labels, "sh", "-c", "exit 5"))
	if err != nil {
		t.Fatal(err)
	}
	type waited struct {
		exit engine.Exit
		err  error
	}
	var wg sync.WaitGroup
	results := make(chan waited, 3)
	for range 3 {
		wg.Go(func() {
			exit, err := e.Wait(ctx, id)
			results <- waited{exit, err}
		})
	}
	time.Sleep(50 * time.Millisecond) // let the waiters register
	if err := e.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r.err != nil || r.exit.Code != 5 {
			t.Errorf("wait before start: %+v", r)
		}
	}

	// After the exit: returns at once, as often as asked.
	for range 2 {
		start := time.Now()
		exit, err := e.Wait(ctx, id)
		if err != nil || exit.Code != 5 {
			t.Errorf("wait after exit: %+v %v", exit, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("wait after exit took %v", d)
		}
	}
}

func TestWaitEndsWithContext(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	id, err := e.Create(ctx, busybox(labels, "sleep", "60"))
	if err != nil {
		t.Fatal(err)
	}
	for _, start := range []bool{false, true} {
		if start {
			if err := e.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		t0 := time.Now()
		_, err = e.Wait(wctx, id)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("started=%v: got %v, want the context's error", start, err)
		}
		if d := time.Since(t0); d > 2*time.Second {
			t.Errorf("started=%v: wait outlived its context by %v", start, d)
		}
	}
}

// A start that fails leaves the container "created" and the engine reports
// no exit: Wait must still return, at once.
func TestWaitOnFailedStart(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	spec := busybox(labels)
	spec.Entrypoint = []string{"/nonexistent"}
	id, err := e.Create(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var exit engine.Exit
	go func() {
		var err error
		exit, err = e.Wait(ctx, id)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := e.Start(ctx, id); err == nil {
		t.Fatal("start of a missing executable succeeded")
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "did not start") || exit.Code != 127 {
			t.Errorf("got %+v, %v; want code 127 and a start error", exit, err)
		}
	case <-time.After(time.Second):
		t.Fatal("wait did not return after a failed start")
	}
	if exit, err := e.Wait(ctx, id); err == nil || exit.Code != 127 {
		t.Errorf("wait after a failed start: %+v, %v", exit, err)
	}
}

func TestStop(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	trapping := busybox(labels, "sh", "-c", `trap 'exit 3' TERM; echo ready; while :; do sleep 0.05; done`)
	for _, paused := range []bool{false, true} {
		t.Run(fmt.Sprintf("paused=%v", paused), func(t *testing.T) {
			id, err := e.Create(ctx, trapping)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.Start(ctx, id); err != nil {
				t.Fatal(err)
			}
			waitForOutput(t, e, ctx, id, "ready\n") // the trap is set
			if paused {
				if err := e.Pause(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			t0 := time.Now()
			if err := e.Stop(ctx, id, 10); err != nil {
				t.Fatal(err)
			}
			if d := time.Since(t0); d > 5*time.Second {
				t.Errorf("stop waited %v: SIGTERM was not handled", d)
			}
			if exit, err := e.Wait(ctx, id); err != nil || exit.Code != 3 {
				t.Errorf("got %+v %v, want the trap's exit 3", exit, err)
			}
			if err := e.Stop(ctx, id, 10); err != nil {
				t.Errorf("stopping an exited container: %v", err)
			}
		})
	}
	t.Run("kill after grace", func(t *testing.T) {
		id, err := e.Create(ctx, busybox(labels, "sleep", "60")) // PID 1 ignores SIGTERM
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := e.Stop(ctx, id, 0); err != nil {
			t.Fatal(err)
		}
		if exit, err := e.Wait(ctx, id); err != nil || exit.Code != 137 {
			t.Errorf("got %+v %v, want 137", exit, err)
		}
		if err := e.Remove(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := e.Stop(ctx, id, 1); err != nil {
			t.Errorf("stopping a removed container: %v", err)
		}
	})
}

// waitForOutput waits until the running container id has written want on
// its stdout.
func waitForOutput(t *testing.T, e *docker.Engine, ctx context.Context, id, want string) {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops following the logs
	w := &outputWaiter{want: want, seen: make(chan struct{})}
	ended := make(chan error, 1)
	go func() { ended <- e.Logs(ctx, id, w, nil) }()
	select {
	case <-w.seen:
	case err := <-ended:
		select {
		case <-w.seen:
		default:
			t.Fatalf("the container's output ended without %q: %v", want, err)
		}
	}
}

// outputWaiter closes seen once what is written to it holds want.
type outputWaiter struct {
	want  string
	got   strings.Builder
	found bool
	seen  chan struct{}
}

func (w *outputWaiter) Write(p []byte) (int, error) {
	if !w.found {
		w.got.Write(p)
		if strings.Contains(w.got.String(), w.want) {
			w.found = true
			close(w.seen)
		}
	}
	return len(p), nil
}

func tarOf(t testing.TB, files map[string]string) io.Reader {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		body := files[name]
		h := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)}
		if strings.HasSuffix(name, "/") {
			h = &tar.Header{Name: name, Mode: 0o755, Typeflag: tar.TypeDir, ModTime: time.Unix(0, 0)}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return &b
}

func untar(t testing.TB, r io.Reader) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		name := h.Name
		if h.Typeflag == tar.TypeDir && !strings.HasSuffix(name, "/") {
			name += "/"
		}
		out[name] = string(b)
	}
}

func TestCopyToThenFrom(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	id, err := e.Create(ctx, busybox(labels, "cat", "/tmp/data/a.txt", "/tmp/data/sub/b.txt"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"data/": "", "data/a.txt": "alpha\n", "data/sub/": "", "data/sub/b.txt": "beta\n"}
	// Into a created container: the inputs are there before it starts.
	if err := e.CopyTo(ctx, id, "/tmp", tarOf(t, files)); err != nil {
		t.Fatal(err)
	}
	rc, err := e.CopyFrom(ctx, id, "/tmp/data")
	if err != nil {
		t.Fatal(err)
	}
	got := untar(t, rc)
	rc.Close()
	if !maps.Equal(got, files) {
		t.Errorf("round trip:\n got %q\nwant %q", got, files)
	}
	if err := e.Start(ctx, id); err != nil {
		t.Fatal(err)
	}
	if exit, err := e.Wait(ctx, id); err != nil || exit.Code != 0 {
		t.Fatalf("%+v %v", exit, err)
	}
	var out strings.Builder
	if err := e.Logs(ctx, id, &out, nil); err != nil {
		t.Fatal(err)
	}
	if out.String() != "alpha\nbeta\n" {
		t.Errorf("the container saw %q", out.String())
	}
	if _, err := e.CopyFrom(ctx, id, "/tmp/absent"); err == nil {
		t.Error("copying a missing path must fail")
	}
	if err := e.CopyTo(ctx, id, "/absent-dir", tarOf(t, files)); err == nil {
		t.Error("copying into a missing directory must fail")
	}
}

func TestImportImage(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)

	// Take the static busybox out of the busybox image: the test needs no
	// file of the host.
	id, err := e.Create(ctx, busybox(labels, "true"))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := e.CopyFrom(ctx, id, "/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	bin := untar(t, rc)["busybox"]
	rc.Close()
	if len(bin) < 100_000 {
		t.Fatalf("busybox binary of %d bytes", len(bin))
	}

	// A rootfs like the agent's own image: one static binary and an empty /tmp.
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, h := range []*tar.Header{
		{Name: "busybox", Mode: 0o755, Size: int64(len(bin)), Typeflag: tar.TypeReg},
		{Name: "tmp/", Mode: 0o1777, Typeflag: tar.TypeDir},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			io.WriteString(tw, bin)
		}
	}
	tw.Close()

	ref := "monkeyci-test/import-" + labels[dockertest.BuildLabel] // ":latest" is added
	t.Cleanup(func() { e.RemoveImage(context.Background(), ref) })
	if err := e.ImportImage(ctx, ref, &b, []string{"/busybox", "echo", "imported"}); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.HasImage(ctx, ref+":latest"); err != nil || !ok {
		t.Fatalf("imported image not found: %v %v", ok, err)
	}
	img, err := e.InspectImage(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Config.Entrypoint; !slices.Equal(got, []string{"/busybox", "echo", "imported"}) {
		t.Errorf("entrypoint %q", got)
	}

	spec := engine.ContainerSpec{Image: ref, Labels: labels, Network: "none"}
	if r := run(t, e, ctx, spec); r.exit.Code != 0 || r.stdout != "imported\n" {
		t.Errorf("image's entrypoint (nil keeps it): %+v", r)
	}
	spec.Cmd = []string{"x"}
	if r := run(t, e, ctx, spec); r.stdout != "imported x\n" {
		t.Errorf("cmd after the image's entrypoint: %+v", r)
	}
	spec.Entrypoint, spec.Cmd = []string{}, []string{"/busybox", "echo", "cleared"}
	if r := run(t, e, ctx, spec); r.stdout != "cleared\n" {
		t.Errorf("empty entrypoint must clear the image's: %+v", r)
	}
	spec.Entrypoint, spec.Cmd = []string{"/busybox", "sh", "-c", "test -d /tmp && echo tmp"}, nil
	if r := run(t, e, ctx, spec); r.stdout != "tmp\n" {
		t.Errorf("replaced entrypoint: %+v", r)
	}
}

func TestEnsureImage(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	if err := e.EnsureImage(ctx, dockertest.Busybox); err != nil {
		t.Errorf("present image: %v", err)
	}

	absent := "monkeyci-test/absent-" + labels[dockertest.BuildLabel] + ":x"
	if ok, err := e.HasImage(ctx, absent); err != nil || ok {
		t.Fatalf("HasImage of an absent image: %v %v", ok, err)
	}
	start := time.Now()
	err := e.EnsureImage(ctx, absent)
	if !errors.Is(err, engine.ErrImageNotFound) {
		t.Fatalf("got %v, want ErrImageNotFound", err)
	}
	if want := "image " + absent + " is not present locally and could not be pulled: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("message %q", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("a failed pull took %v", d)
	}

	if _, err := e.Create(ctx, engine.ContainerSpec{Image: absent, Labels: labels}); !errors.Is(err, engine.ErrImageNotFound) {
		t.Errorf("create from an absent image: %v", err)
	}
}

func TestListByLabels(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	job, err := e.Create(ctx, busybox(with(labels, "io.monkeyci.role", "job"), "true"))
	if err != nil {
		t.Fatal(err)
	}
	script, err := e.Create(ctx, busybox(with(labels, "io.monkeyci.role", "script"), "true"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.CreateVolume(ctx, labels[dockertest.BuildLabel]+"-v", with(labels, "io.monkeyci.role", "job")); err != nil {
		t.Fatal(err)
	}

	list := func(l map[string]string) []string {
		t.Helper()
		ids, err := e.ListContainers(ctx, l)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		return ids
	}
	if got, want := list(labels), slices.Sorted(slices.Values([]string{job, script})); !slices.Equal(got, want) {
		t.Errorf("by build: %v, want %v", got, want)
	}
	if got := list(with(labels, "io.monkeyci.role", "job")); !slices.Equal(got, []string{job}) {
		t.Errorf("by build and role: %v", got)
	}
	if got := list(with(labels, dockertest.BuildLabel, "test-none")); len(got) != 0 {
		t.Errorf("other build: %v", got)
	}
	if _, err := e.ListContainers(ctx, nil); err == nil {
		t.Error("listing by no label must be refused")
	}

	if names, err := e.ListVolumes(ctx, with(labels, "io.monkeyci.role", "job")); err != nil || len(names) != 1 {
		t.Errorf("volumes: %v %v", names, err)
	}
	if names, err := e.ListVolumes(ctx, with(labels, "io.monkeyci.role", "script")); err != nil || len(names) != 0 {
		t.Errorf("volumes of another role: %v %v", names, err)
	}
	if _, err := e.ListVolumes(ctx, map[string]string{}); err == nil {
		t.Error("listing by no label must be refused")
	}
}

func TestRemoveIdempotent(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	created, err := e.Create(ctx, busybox(labels, "true"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := e.Remove(ctx, created); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Remove(ctx, "monkeyci-no-such-container"); err != nil {
		t.Errorf("removing what never was: %v", err)
	}
	if err := e.RemoveVolume(ctx, "monkeyci-no-such-volume"); err != nil {
		t.Errorf("removing a volume that never was: %v", err)
	}

	// Several removals of a running container at once all succeed, and it is gone.
	running, err := e.Create(ctx, busybox(labels, "sleep", "60"))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(ctx, running); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := e.Remove(ctx, running); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if _, err := e.State(ctx, running); !errors.Is(err, docker.ErrContainerNotFound) {
		t.Errorf("after removal: %v", err)
	}
	if ids, err := e.ListContainers(ctx, labels); err != nil || len(ids) != 0 {
		t.Errorf("left: %v %v", ids, err)
	}
}

// BenchmarkJob measures a job as the runner makes one: create, start, wait,
// remove, of `true` in the busybox image. Compare with
// `docker run --rm monkeyci/busybox true` (and `--network none`).
func BenchmarkJob(b *testing.B) {
	for _, network := range []string{"", "none"} {
		b.Run("network="+network, func(b *testing.B) {
			e, labels, ctx := setup(b)
			spec := busybox(labels, "true")
			spec.Network = network
			for b.Loop() {
				id, err := e.Create(ctx, spec)
				if err != nil {
					b.Fatal(err)
				}
				if err := e.Start(ctx, id); err != nil {
					b.Fatal(err)
				}
				if exit, err := e.Wait(ctx, id); err != nil || exit.Code != 0 {
					b.Fatal(exit, err)
				}
				if err := e.Remove(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPauseUnpause measures a pause + unpause round trip.
func BenchmarkPauseUnpause(b *testing.B) {
	e, labels, ctx := setup(b)
	id, err := e.Create(ctx, busybox(labels, "sleep", "600"))
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(ctx, id); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := e.Pause(ctx, id); err != nil {
			b.Fatal(err)
		}
		if err := e.Unpause(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
}

// An overlay volume shows its lower folder, takes what containers write
// in its upper one, and leaves the lower untouched; a folder the mount's
// options cannot name is refused.
func TestOverlayVolume(t *testing.T) {
	t.Parallel()
	e, labels, ctx := setup(t)
	lower, layer := t.TempDir(), t.TempDir()
	upper, work := filepath.Join(layer, "upper"), filepath.Join(layer, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(lower, "kept.txt"), []byte("lower"), 0o644); err != nil {
		t.Fatal(err)
	}
	vol := labels[dockertest.BuildLabel] + "-ov"
	if err := e.CreateOverlayVolume(ctx, vol, labels, lower, upper, work); err != nil {
		t.Fatal(err)
	}
	spec := busybox(labels, "sh", "-c", "cat /ws/kept.txt && echo changed > /ws/kept.txt && echo new > /ws/new.txt && cat /ws/kept.txt")
	spec.Mounts = []engine.Mount{{Volume: vol, Target: "/ws"}}
	r := run(t, e, ctx, spec)
	if r.exit.Code != 0 || r.stdout != "lowerchanged\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.exit.Code, r.stdout, r.stderr)
	}
	for path, want := range map[string]string{
		filepath.Join(lower, "kept.txt"): "lower", filepath.Join(upper, "kept.txt"): "changed\n", filepath.Join(upper, "new.txt"): "new\n",
	} {
		if b, err := os.ReadFile(path); err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q", path, b, err, want)
		}
	}
	for _, bad := range []string{"relative/dir", lower + ",upperdir=/etc", lower + ":/etc"} {
		if err := e.CreateOverlayVolume(ctx, vol+"-bad", labels, bad, upper, work); err == nil {
			t.Errorf("lower %q was taken", bad)
		}
	}
}
