// Package s3test runs a real S3-compatible server for tests: versitygw,
// with its posix backend (a bucket is a folder; object metadata, ETags
// among it, in extended attributes: the temp dir's file system must have
// them), as a process of its own.
// `.ci/run` installs it (go install github.com/versity/versitygw/cmd/versitygw);
// where it is missing the test is skipped, or fails under CI.
package s3test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/loopback"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/internal/wait"
)

// Server is a running S3 server with one empty bucket.
type Server struct {
	Endpoint             string // host:port, plain HTTP
	AccessKey, SecretKey string
	Bucket               string
	// Dir is the folder the bucket's objects are files in.
	Dir string
	// Pid is the server's process (for a bench to read its CPU time).
	Pid int
}

// Start runs a server for the test, stopped when it ends.
func Start(t testing.TB) *Server {
	t.Helper()
	dockertest.SkipInShort(t, "an S3 server (versitygw)")
	bin := binary()
	if bin == "" {
		if dockertest.InCI() {
			t.Fatal("versitygw is required under CI and is not installed: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
		}
		t.Skip("no versitygw: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
	}
	root := t.TempDir()
	s := &Server{AccessKey: "monkeyci-test", SecretKey: "monkeyci-test-secret", Bucket: "blobs"}
	s.Dir = filepath.Join(root, s.Bucket)
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.Endpoint = loopback.FreeAddr(t)
	var out syncbuf.Buffer
	cmd := exec.Command(bin, "--access", s.AccessKey, "--secret", s.SecretKey, "--port", s.Endpoint, "posix", root)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.Pid = cmd.Process.Pid
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	wait.Within(t, time.Minute, "versitygw to listen on "+s.Endpoint, func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("versitygw exited (%v):\n%s", err, out.String())
		default:
		}
		return loopback.Accepts(s.Endpoint)
	})
	return s
}

// Credit gives the processes t starts from now on the server's keys, as a
// coordinator reads them (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
func (s *Server) Credit(t testing.TB) {
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
}

// URL is the server's bucket as the coordinator's --blobs names it.
func (s *Server) URL() string {
	return fmt.Sprintf("s3://%s?endpoint=%s&insecure=1", s.Bucket, s.Endpoint)
}

// binary finds versitygw on the PATH or where go install puts it.
func binary() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if gobin := os.Getenv("GOBIN"); gobin != "" {
		if p := filepath.Join(gobin, "versitygw"); exists(p) {
			return p
		}
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	if p := filepath.Join(gopath, "bin", "versitygw"); exists(p) {
		return p
	}
	return ""
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
