package main

import (
	"encoding/json"
	"testing"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

func TestAdminCLIAgents(t *testing.T) {
	f := newFakeAdmin()
	f.agents = []*fleet.AgentInfo{
		{Id: "a1", Name: "box", State: "ready", MilliCpus: 4000, Memory: 16 << 30, FreeMilliCpus: 3000, FreeMemory: 12 << 30,
			Builds: []string{"b1"}, Labels: map[string]string{"os": "linux"}},
		{Id: "a2", Name: "old", State: "lost"},
	}
	addr := serveFake(t, f, nil)

	code, out, errOut := cli(t, plain(addr, "agents", "ls")...)
	want := "" +
		"ID  NAME  STATE  CPUS  MEMORY  FREE    BUILDS  LABELS\n" +
		"a1  box   ready  4     16GB    3/12GB  1       os=linux\n" +
		"a2  old   lost   -     -       -       0       -\n"
	if code != 0 || out != want {
		t.Errorf("agents ls: exit %d, %q\n%s\nwant\n%s", code, errOut, out, want)
	}

	code, out, _ = cli(t, plain(addr, "agents", "ls", "-o", "json")...)
	var agents []map[string]any
	if err := json.Unmarshal([]byte(out), &agents); code != 0 || err != nil || len(agents) != 2 ||
		agents[0]["id"] != "a1" || agents[0]["free_milli_cpus"] != 3000.0 || agents[1]["state"] != "lost" {
		t.Errorf("agents ls -o json: exit %d, %v\n%s", code, err, out)
	}

	for _, c := range []struct {
		cmd, arg string
		action   fleet.SetAgentRequest_Action
		out      string
	}{
		{"cordon", "box", fleet.SetAgentRequest_CORDON, "agent box (a1) is cordoned\n"},
		{"uncordon", "a1", fleet.SetAgentRequest_UNCORDON, "agent box (a1) is ready\n"},
		{"drain", "old", fleet.SetAgentRequest_DRAIN, "agent old (a2) is draining\n"},
	} {
		f.reset()
		code, out, errOut := cli(t, plain(addr, "agents", c.cmd, c.arg)...)
		if code != 0 || out != c.out {
			t.Errorf("agents %s: exit %d, %q, %q", c.cmd, code, out, errOut)
		}
		assertRequests(t, f, "SetAgent", &fleet.SetAgentRequest{Id: c.arg, Action: c.action})
	}

	code, out, errOut = cli(t, plain(addr, "agents", "drain", "nope")...)
	if code != 1 || out != "" || errOut != "monkeyci: agent \"nope\": not found\n" {
		t.Errorf("unknown agent: exit %d, %q, %q", code, out, errOut)
	}
	f.reset()
	if code, _, _ := cli(t, plain(addr, "agents", "cordon")...); code != 2 || len(f.requests("SetAgent")) != 0 {
		t.Errorf("cordon without an agent: exit %d", code)
	}
	assertTokens(t, f, "Bearer "+fakeToken)
}
