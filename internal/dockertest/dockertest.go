// Package dockertest helps tests that need the real Docker engine.
//
// Where no engine answers, such tests are skipped, except under CI (the
// environment variable CI set to anything but "false" or "0"), which has an
// engine: there they fail, so that a broken engine cannot pass as a green
// run. In the fast tier (go test -short) they are skipped whatever the
// engine: that tier needs none. Images come from `make images`
// (images/build.sh); nothing is pulled.
package dockertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/agent/docker"
)

// Busybox is the small local image that images/build.sh makes from Debian's
// busybox-static: /bin/sh and the usual applets, /tmp.
const Busybox = "monkeyci/busybox:latest"

// BuildLabel is the label that ties test containers and volumes together.
const BuildLabel = "io.monkeyci.build"

// InCI reports whether the tests run under CI, where the engine is required.
func InCI() bool {
	v := os.Getenv("CI")
	return v != "" && v != "false" && v != "0"
}

// Engine returns an engine that answered a ping, closed at the end of the
// test. When none answers it skips the test, or fails it under CI.
func Engine(t testing.TB) *docker.Engine {
	t.Helper()
	SkipInShort(t, "the Docker engine")
	e, err := docker.New(hclog.NewNullLogger())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = e.Ping(ctx)
		cancel()
		if err != nil {
			e.Close()
		}
	}
	if err != nil {
		if InCI() {
			t.Fatalf("the Docker engine is required under CI and does not answer: %v", err)
		}
		t.Skipf("no Docker engine: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// RequireImage fails the test when ref is not present locally (and skips it
// when there is no engine, as Engine does).
func RequireImage(t testing.TB, ref string) {
	t.Helper()
	e := Engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := e.HasImage(ctx, ref)
	if err != nil {
		t.Fatalf("looking for image %s: %v", ref, err)
	}
	if !ok {
		t.Fatalf("image %s is not present: run `make images` (images/build.sh) first", ref)
	}
}

// RequireFirewall skips t, or fails it under CI, unless this host runs the
// agent hosts' firewall (packer/firewall.sh): without it docker's own
// isolation between networks has gaps while networks are being made, so a
// test that attacks it across builds would pass or fail by timing.
func RequireFirewall(t testing.TB) {
	t.Helper()
	SkipInShort(t, "the Docker engine")
	err := exec.Command("iptables", "-w", "-t", "mangle", "-C", "FORWARD", "-j", "MONKEYCI-FIREWALL").Run()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("this host lacks the agent hosts' firewall (%v): run `sh packer/firewall.sh` as root (.ci/run does)", err)
	if InCI() {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// SkipInShort skips t in the fast tier (go test -short), which runs with
// no Docker engine and builds no binary; needs says what t needs instead.
func SkipInShort(t testing.TB, needs string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs %s: not in the -short tier", needs)
	}
}

// Labels returns a label set unique to this test, {io.monkeyci.build:
// test-<random>}, and removes whatever carries it when the test ends.
func Labels(t testing.TB) map[string]string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{BuildLabel: "test-" + hex.EncodeToString(b[:])}
	Cleanup(t, labels)
	return labels
}

// Cleanup removes, when the test ends, every container and then every volume
// and network that carries all the labels. It uses a fresh context, so it runs even when
// the test's own context was canceled. labels must not be empty.
func Cleanup(t testing.TB, labels map[string]string) {
	t.Helper()
	if len(labels) == 0 {
		t.Fatal("dockertest.Cleanup: empty label set would match everything")
	}
	e := Engine(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		ids, err := e.ListContainers(ctx, labels)
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for _, id := range ids {
			if err := e.Remove(ctx, id); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		names, err := e.ListVolumes(ctx, labels)
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for _, name := range names {
			if err := e.RemoveVolume(ctx, name); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
		nets, err := e.ListNetworks(ctx, labels)
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for _, name := range nets {
			if err := e.RemoveNetwork(ctx, name); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
}
