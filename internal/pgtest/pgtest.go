// Package pgtest runs a real PostgreSQL server for tests: a throwaway
// cluster made with initdb in a temporary folder, run by the postgres
// program as an unprivileged user (it refuses to run as root: the
// "postgres" user Debian's package makes, or nobody) on a loopback port
// of its own, with fsync off (a test's database need not outlive the
// machine). `.ci/run` installs it (Debian's postgresql); where it is
// missing the test is skipped, or fails under CI.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/monkeyci/monkeyci/internal/dockertest"
	"github.com/monkeyci/monkeyci/internal/loopback"
	"github.com/monkeyci/monkeyci/internal/syncbuf"
	"github.com/monkeyci/monkeyci/internal/wait"
)

// Server is a running PostgreSQL server with one empty database.
type Server struct {
	// DSN names the database, as pgx and `--database` take it.
	DSN  string
	Addr string // host:port on loopback
	// Dir holds the cluster's files.
	Dir string

	t    testing.TB
	bin  string
	cred *syscall.Credential // the user the server runs as; nil: this process's
	cmd  *exec.Cmd
	done chan error
	out  *syncbuf.Buffer
	// fsync is the server's fsync setting.
	fsync string

	databases atomic.Int64 // made by NewDatabase
}

// Options change the server Start runs.
type Options struct {
	// Durable keeps PostgreSQL's fsync on, as a real deployment has it:
	// for benchmarks. Tests leave it off.
	Durable bool
}

// Start runs a server for the test, stopped and removed when it ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, o Options) *Server {
	t.Helper()
	dockertest.SkipInShort(t, "a PostgreSQL server")
	bin := binDir()
	if bin == "" {
		if dockertest.InCI() {
			t.Fatal("PostgreSQL is required under CI and is not installed: apt-get install postgresql")
		}
		t.Skip("no PostgreSQL: apt-get install postgresql")
	}
	s := &Server{t: t, bin: bin, fsync: "off"}
	if o.Durable {
		s.fsync = "on"
	}
	var uid, gid int
	if os.Geteuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			t.Fatal(err)
		}
		s.cred, uid, gid = cred, int(cred.Uid), int(cred.Gid)
	}
	// Not t.TempDir: its parents are root's alone, where the server's
	// user could not reach.
	dir, err := os.MkdirTemp("", "pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	s.Dir = filepath.Join(dir, "data")
	if s.cred != nil {
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := s.command("initdb", "-D", s.Dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	s.Addr = loopback.FreeAddr(t)
	s.DSN = fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", s.Addr)
	s.start()
	t.Cleanup(s.stop)
	return s
}

// NewDatabase makes another empty database on the server, for one test
// of several that share the server (a cluster takes seconds to make, a
// database milliseconds), and returns its DSN. It is dropped when t ends.
func (s *Server) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", s.databases.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if conn, err := pgx.Connect(ctx, s.DSN); err == nil {
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = conn.Close(ctx)
		}
	})
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable", s.Addr, name)
}

// Restart stops the server (as a fast shutdown does: sessions end) and
// starts it again on the same port and files.
func (s *Server) Restart() {
	s.t.Helper()
	s.stop()
	s.start()
}

// start runs the server and waits until it accepts connections.
func (s *Server) start() {
	s.t.Helper()
	_, port, _ := net.SplitHostPort(s.Addr)
	s.out = &syncbuf.Buffer{}
	args := []string{"-D", s.Dir, "-h", "127.0.0.1", "-p", port,
		"-k", filepath.Dir(s.Dir), "-c", "fsync=" + s.fsync, "-c", "max_connections=200"}
	s.cmd = s.command("postgres", args...)
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan error, 1)
	go func(cmd *exec.Cmd, done chan error) { done <- cmd.Wait() }(s.cmd, s.done)
	wait.Within(s.t, time.Minute, "PostgreSQL to accept connections on "+s.Addr, func() bool {
		select {
		case err := <-s.done:
			s.done <- err
			s.t.Fatalf("postgres exited (%v):\n%s", err, s.out.String())
		default:
		}
		return s.command("pg_isready", "-q", "-h", "127.0.0.1", "-p", port).Run() == nil
	})
}

// stop asks for a fast shutdown and waits for it; a server that does not
// go within a minute is killed.
func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.done:
	case <-time.After(time.Minute):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd = nil
}

// command runs one of PostgreSQL's programs as the server's user.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
		cmd.Dir = "/"
	}
	return cmd
}

// unprivileged is the user a root process runs the server as.
func unprivileged() (*syscall.Credential, error) {
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 == nil && err2 == nil {
			return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
		}
	}
	return nil, fmt.Errorf("no unprivileged user (postgres or nobody) to run PostgreSQL as: it refuses root")
}

// binDir is the folder of the newest PostgreSQL's programs Debian holds,
// or of initdb on the PATH; "" when there is none.
func binDir() string {
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	slices.SortFunc(found, func(a, b string) int { return version(b) - version(a) })
	if len(found) > 0 {
		return filepath.Dir(found[0])
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

// version is the major version in a path of /usr/lib/postgresql/N/bin.
func version(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}
