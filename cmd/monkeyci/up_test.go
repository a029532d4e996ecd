package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/monkeyci/monkeyci/coordinator/tlsca"
	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/gittest"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/internal/testbinary"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// upProcess is a running `monkeyci up`.
type upProcess struct {
	cmd               *exec.Cmd
	server, ca, token string
	http              string
	dataDir           string
	stderr            *syncbuf.Buffer
}

var (
	upLine     = regexp.MustCompile(`MONKEYCI_SERVER=(\S+) MONKEYCI_CA=(\S+) MONKEYCI_TOKEN=(\S+)`)
	upHTTPLine = regexp.MustCompile(`, (\S+) \(HTTP\)`)
)

func startUp(t *testing.T) *upProcess {
	t.Helper()
	p := &upProcess{stderr: &syncbuf.Buffer{}, dataDir: t.TempDir()}
	p.cmd = exec.Command(testbinary.Path(t), "up", "--data-dir", p.dataDir, "--grpc-listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--cpus", "2", "--memory", "8g")
	p.cmd.Stderr = p.stderr
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if m := upHTTPLine.FindStringSubmatch(lines.Text()); m != nil {
			p.http = m[1]
		}
		if m := upLine.FindStringSubmatch(lines.Text()); m != nil {
			p.server, p.ca, p.token = m[1], m[2], m[3]
			break
		}
	}
	if p.server == "" {
		t.Fatalf("monkeyci up printed no address; stderr:\n%s", p.stderr)
	}
	go func() {
		for lines.Scan() {
		}
	}()
	return p
}

func (p *upProcess) admin(t *testing.T) fleet.AdminClient {
	t.Helper()
	tc, err := tlsca.ClientConfig(p.ca, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(p.server, grpc.WithTransportCredentials(credentials.NewTLS(tc)), grpc.WithPerRPCCredentials(tokenCreds(p.token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return fleet.NewAdminClient(conn)
}

type tokenCreds string

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}
func (tokenCreds) RequireTransportSecurity() bool { return true }

// TestUpRunsATriggeredBuildAndDrainsOnSIGTERM drives a real `monkeyci up`
// over TLS: a build of a local repository runs to success, and SIGTERM
// makes the process exit 0.
func TestUpRunsATriggeredBuildAndDrainsOnSIGTERM(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	repo, commit := gittest.Repo(t, map[string]string{".monkeyci/build.yaml": "id: hi\nimage: monkeyci/busybox:latest\nscript: ['echo up and running']\n"})
	p := startUp(t)
	api := p.admin(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	b, err := api.Trigger(ctx, &fleet.TriggerRequest{Url: repo, Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	logs, err := api.Logs(ctx, &fleet.LogsRequest{Build: b.GetId(), Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	for {
		ch, err := logs.Recv()
		if err != nil {
			break
		}
		if ch.GetJob() == "hi" {
			got.Write(ch.GetData())
		}
	}
	t.Logf("logs done after %s", time.Since(t0))
	if got.String() != "up and running\n" {
		t.Errorf("followed log %q", got.String())
	}
	info, err := api.GetBuild(ctx, &fleet.GetBuildRequest{Id: b.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if info.GetBuild().GetResult() != "success" {
		t.Fatalf("build %+v", info.GetBuild())
	}
	metrics, err := http.Get("http://" + p.http + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	for _, want := range []string{`monkeyci_builds_ended_total{result="success"} 1`, "monkeyci_builds_queued 0", `monkeyci_agents{state="ready"} 1`} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("GET /metrics: no line %q in:\n%s", want, body)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- p.cmd.Wait() }()
	select {
	case err := <-waited:
		t.Logf("exited after %s", time.Since(t0))
		if err != nil {
			t.Errorf("monkeyci up exited with %v after SIGTERM; stderr:\n%s", err, p.stderr)
		}
	case <-time.After(time.Minute):
		t.Fatal("monkeyci up did not exit within a minute of SIGTERM")
	}
}

// `monkeyci up --build DIR` builds a plain directory once through the
// fleet and exits with the build's result.
func TestUpBuildBuildsADirectoryOnceAndExitsWithItsResult(t *testing.T) {
	dockertest.Engine(t)
	dockertest.RequireImage(t, dockertest.Busybox)
	tests := []struct {
		name, script, output string
		exit                 int
	}{
		{"success", "echo built by the fleet", "built by the fleet", 0},
		{"failure", "echo about to fail; exit 3", "about to fail", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, ".monkeyci"), 0o755); err != nil {
				t.Fatal(err)
			}
			yaml := "id: once\nimage: monkeyci/busybox:latest\nscript: ['" + tc.script + "']\n"
			if err := os.WriteFile(filepath.Join(dir, ".monkeyci", "build.yaml"), []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, testbinary.Path(t), "up", "--data-dir", t.TempDir(), "--grpc-listen", "127.0.0.1:0",
				"--http-listen", "127.0.0.1:0", "--cpus", "2", "--memory", "8g", "--build", dir)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != tc.exit {
				t.Fatalf("exit %d (%v), want %d; stdout:\n%s\nstderr:\n%s", code, err, tc.exit, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), "once | "+tc.output) || !strings.Contains(stdout.String(), " "+tc.name+" in ") {
				t.Errorf("stdout does not show the job's output and the result:\n%s", stdout.String())
			}
		})
	}
}
