// Package script is what runs inside a build's script container: a client
// of the job API and the driver that walks a declarative build's job graph
// through it.
package script

import (
	"context"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// Env names the agent sets in a script container.
const (
	EnvAPI   = "MONKEYCI_API"
	EnvToken = "MONKEYCI_TOKEN"
)

// Dial connects to the job API at target (for instance
// unix:///run/monkeyci/job.sock) with the build's token. No keepalive pings:
// the agent freezes this process while it awaits, and a deadline or a ping
// would fire on thaw.
func Dial(target, token string) (jobapi.JobAPIClient, func() error, error) {
	if target == "" || token == "" {
		return nil, nil, errors.New("the job API address and token are not set (" + EnvAPI + ", " + EnvToken + "): is this running in a build's script container?")
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		return nil, nil, fmt.Errorf("job API at %s: %w", target, err)
	}
	return jobapi.NewJobAPIClient(conn), conn.Close, nil
}

// DialFromEnv dials the job API named by the environment.
func DialFromEnv() (jobapi.JobAPIClient, func() error, error) {
	return Dial(os.Getenv(EnvAPI), os.Getenv(EnvToken))
}

// bearer carries the build's token on every call. The socket is local to
// the container, so the token travels without TLS.
type bearer string

func (t bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
