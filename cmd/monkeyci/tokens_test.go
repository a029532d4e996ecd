package main

import (
	"testing"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

func TestAdminCLITokens(t *testing.T) {
	f := newFakeAdmin()
	addr := serveFake(t, f, nil)
	if code, out, errOut := cli(t, plain(addr, "tokens", "create", "--kind", "viewer")...); code != 0 || out != "tok-viewer\n" || errOut != "" {
		t.Errorf("tokens create: exit %d, %q, %q", code, out, errOut)
	}
	if code, out, _ := cli(t, plain(addr, "tokens", "create", "--kind", "admin", "-o", "json")...); code != 0 || out != "{\n  \"token\": \"tok-admin\",\n  \"kind\": \"admin\",\n  \"id\": \"id-admin\"\n}\n" {
		t.Errorf("tokens create -o json: exit %d, %q", code, out)
	}
	assertRequests(t, f, "CreateToken", &fleet.CreateTokenRequest{Kind: "viewer"}, &fleet.CreateTokenRequest{Kind: "admin"})
	assertTokens(t, f, "Bearer "+fakeToken)

	f.reset()
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"tokens", "create"}, "monkeyci: --kind is required: say agent, admin, viewer\n"},
		{[]string{"tokens", "create", "--kind", "root"}, "monkeyci: --kind \"root\": say agent, admin, viewer\n"},
	} {
		if code, _, errOut := cli(t, plain(addr, c.args...)...); code != 2 || errOut != c.err {
			t.Errorf("%v: exit %d, %q", c.args, code, errOut)
		}
	}
	if len(f.calls) != 0 {
		t.Errorf("usage errors made calls: %v", f.calls)
	}
}
