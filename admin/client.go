// Package admin is the client side of the coordinator's admin API, as the
// monkeyci command line speaks it: dialing with TLS and a bearer token,
// errors in words, tables and JSON for builds and agents, and log streams.
package admin

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/monkeyci/monkeyci/proto/fleet"
)

// DefaultServer is where the coordinator's gRPC API listens by default.
const DefaultServer = "127.0.0.1:7433"

// Options say how to reach the coordinator.
type Options struct {
	Server string // host:port
	Token  string // sent as "authorization: Bearer <token>"; empty: none
	CA     string // PEM file of the CA to trust; empty: the system's roots
	TLS    bool   // false: plaintext (loopback)
}

// Client is a connection to the coordinator's admin API.
type Client struct {
	fleet.AdminClient
	Server string
	conn   *grpc.ClientConn
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// TLSConfig is the client configuration of o: TLS 1.3 at least, trusting
// only the CA in o.CA when it is given.
func TLSConfig(o Options) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if o.CA == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(o.CA)
	if err != nil {
		return nil, fmt.Errorf("--ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("--ca %s: no PEM certificate in it", o.CA)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// Dial makes a client for o. It does not connect: the first call does, and
// fails with Unavailable when the coordinator cannot be reached.
func Dial(o Options) (*Client, error) {
	if o.Server == "" {
		return nil, errors.New("--server is empty")
	}
	creds := insecure.NewCredentials()
	if o.TLS {
		cfg, err := TLSConfig(o)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(cfg)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if o.Token != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(Bearer(o.Token)))
	}
	conn, err := grpc.NewClient(o.Server, opts...)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", o.Server, err)
	}
	return &Client{AdminClient: fleet.NewAdminClient(conn), Server: o.Server, conn: conn}, nil
}

// Bearer sends a token with every call. It does not require transport
// security, so that --tls=false works on loopback.
type Bearer string

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (b Bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (Bearer) RequireTransportSecurity() bool { return false }

var _ credentials.PerRPCCredentials = Bearer("")
