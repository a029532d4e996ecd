// Package monkeyci is the Go SDK of MonkeyCI's job API: what a build script
// written in Go uses to start its jobs, wait for them, read the build's
// parameters and report work it does itself as jobs (actions).
//
// A build script runs in the build's script container, where the agent sets
// MONKEYCI_API (the job API's unix socket) and MONKEYCI_TOKEN (the build's
// token); Connect reads them:
//
//	ci, err := monkeyci.Connect(ctx)
//	if err != nil { ... }
//	defer ci.Close()
//	res, err := ci.Run(ctx, monkeyci.Job{ID: "test", Image: "golang:1.26", Script: []string{"go test ./..."}})
//
// While every call of the script is a wait, the agent freezes the script's
// container and lends its CPU to the jobs. So do not put a deadline on the
// context of Wait or Run: it keeps running while the script is frozen and
// fires when it thaws.
package monkeyci

import (
	"context"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/monkeyci/monkeyci/proto/jobapi"
)

// The environment the agent sets in a script container.
const (
	EnvAPI   = "MONKEYCI_API"
	EnvToken = "MONKEYCI_TOKEN"
)

// ErrNotInBuild is returned by Connect outside a build's script container.
var ErrNotInBuild = errors.New("the job API address and token are not set (" + EnvAPI + ", " + EnvToken + "): is this running in a build's script container?")

// Client speaks to the job API of one build. It is safe for concurrent use.
type Client struct {
	api  jobapi.JobAPIClient
	conn *grpc.ClientConn
}

// Connect connects to the job API named by the environment. No call is
// made yet: the first one waits until the agent has fetched the source.
func Connect(ctx context.Context) (*Client, error) {
	return Dial(ctx, os.Getenv(EnvAPI), os.Getenv(EnvToken))
}

// Dial connects to the job API at target (for instance
// unix:///run/monkeyci/job.sock) with the build's token. No keepalive
// pings: the agent freezes this process while it waits, and a ping
// unanswered then would cut the connection.
func Dial(ctx context.Context, target, token string) (*Client, error) {
	if target == "" || token == "" {
		return nil, ErrNotInBuild
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearer(token)))
	if err != nil {
		return nil, fmt.Errorf("job API at %s: %w", target, err)
	}
	return &Client{api: jobapi.NewJobAPIClient(conn), conn: conn}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// API is the generated client, for what this package does not wrap.
func (c *Client) API() jobapi.JobAPIClient { return c.api }

// bearer carries the build's token on every call. The socket is local to
// the container, so the token travels without TLS.
type bearer string

func (t bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
