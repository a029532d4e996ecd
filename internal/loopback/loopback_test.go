package loopback

import (
	"net"
	"testing"
)

func TestAFreeAddressAcceptsOnceListenedOn(t *testing.T) {
	addr := FreeAddr(t)
	if Accepts(addr) {
		t.Fatalf("%s accepts before anything listens", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the free address %s cannot be listened on: %v", addr, err)
	}
	defer l.Close()
	if !Accepts(addr) {
		t.Errorf("%s does not accept while listened on", addr)
	}
}
