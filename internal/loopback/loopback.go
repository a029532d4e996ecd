// Package loopback is what tests need of the loopback interface to run a
// server as a process of their own: a free address for it, and whether
// it accepts connections yet.
package loopback

import (
	"net"
	"testing"
	"time"
)

// FreeAddr is a 127.0.0.1:PORT nothing listens on now: the server the
// test starts listens there before anything else takes it.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Accepts says whether something accepts TCP connections at addr.
func Accepts(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}
