// Package script is what runs inside a build's script container: a client
// of the job API, the driver that walks a declarative build's job graph
// through it, and the runner of a build script in any language.
package script

import (
	"context"

	"github.com/monkeyci/monkeyci/proto/jobapi"
	monkeyci "github.com/monkeyci/monkeyci/sdk"
)

// Env names the agent sets in a script container.
const (
	EnvAPI   = monkeyci.EnvAPI
	EnvToken = monkeyci.EnvToken
)

// Dial connects to the job API at target (for instance
// unix:///run/monkeyci/job.sock) with the build's token, through the SDK:
// no keepalive pings, since the agent freezes this process while it waits.
func Dial(target, token string) (jobapi.JobAPIClient, func() error, error) {
	c, err := monkeyci.Dial(context.Background(), target, token)
	if err != nil {
		return nil, nil, err
	}
	return c.API(), c.Close, nil
}

// DialFromEnv dials the job API named by the environment.
func DialFromEnv() (jobapi.JobAPIClient, func() error, error) {
	c, err := monkeyci.Connect(context.Background())
	if err != nil {
		return nil, nil, err
	}
	return c.API(), c.Close, nil
}
