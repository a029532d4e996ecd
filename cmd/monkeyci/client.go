package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

// adminCallTimeout bounds each request to the coordinator (streams that
// follow a build are bounded by the build).
const adminCallTimeout = 30 * time.Second

// adminFlags are the flags of every command that talks to the coordinator.
type adminFlags struct {
	server, token, ca string
	tls               bool
}

// adminEnv names the environment variable behind each flag: the flag, when
// given, wins.
var adminEnv = map[string]string{
	"server": "MONKEYCI_SERVER",
	"token":  "MONKEYCI_TOKEN",
	"ca":     "MONKEYCI_CA",
}

// addAdminFlags gives cmd and its subcommands the client flags.
func addAdminFlags(cmd *cobra.Command) *adminFlags {
	f := &adminFlags{}
	fs := cmd.PersistentFlags()
	fs.StringVar(&f.server, "server", admin.DefaultServer, "the coordinator's gRPC address HOST:PORT (env MONKEYCI_SERVER)")
	fs.StringVar(&f.token, "token", "", "an admin token, or a viewer token for reading (env MONKEYCI_TOKEN)")
	fs.StringVar(&f.ca, "ca", "", "trust the CA in this PEM `FILE`, like the coordinator's DATA_DIR/tls/ca.pem (env MONKEYCI_CA; default: the system's roots)")
	fs.BoolVar(&f.tls, "tls", true, "speak TLS to the coordinator (--tls=false for a plaintext one on loopback)")
	_ = cmd.MarkPersistentFlagFilename("ca", "pem", "crt")
	return f
}

// options are the flags, with the environment for those not given.
func (f *adminFlags) options(cmd *cobra.Command) (admin.Options, error) {
	o := admin.Options{Server: f.server, Token: f.token, CA: f.ca, TLS: f.tls}
	fields := map[string]*string{"server": &o.Server, "token": &o.Token, "ca": &o.CA}
	for name, env := range adminEnv {
		if fl := cmd.Flags().Lookup(name); fl != nil && fl.Changed {
			continue
		}
		if v, ok := os.LookupEnv(env); ok && v != "" {
			*fields[name] = v
		}
	}
	if o.Server == "" {
		return o, errors.New("--server is empty: give the coordinator's HOST:PORT")
	}
	if !o.TLS {
		if fl := cmd.Flags().Lookup("ca"); fl != nil && fl.Changed {
			return o, errors.New("--ca has no use with --tls=false")
		}
		o.CA = "" // from the environment: not for a plaintext coordinator
	}
	return o, nil
}

// dial makes a client from the flags; bad flags are usage errors.
func (f *adminFlags) dial(cmd *cobra.Command) (*admin.Client, error) {
	o, err := f.options(cmd)
	if err != nil {
		return nil, usageError(err)
	}
	c, err := admin.Dial(o)
	if err != nil {
		return nil, usageError(err)
	}
	return c, nil
}

// adminFailed is a call the coordinator refused or could not answer, said
// in one line: exit 1.
func adminFailed(c *admin.Client, err error) error {
	return failedError(errors.New(admin.Describe(err, c.Server)))
}

// callContext bounds one request.
func callContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmdContext(cmd), adminCallTimeout)
}

// adminCall makes one request to the coordinator, as a command's flags
// say, bounded like callContext, and gives its answer: call is the
// request's method, like fleet.AdminClient.ListBuilds. Bad flags are usage
// errors, a request refused or not answered adminFailed.
func adminCall[Req, Resp any](cmd *cobra.Command, f *adminFlags, call func(fleet.AdminClient, context.Context, Req, ...grpc.CallOption) (Resp, error), req Req) (Resp, error) {
	var none Resp
	c, err := f.dial(cmd)
	if err != nil {
		return none, err
	}
	defer c.Close()
	ctx, cancel := callContext(cmd)
	defer cancel()
	resp, err := call(c, ctx, req)
	if err != nil {
		return none, adminFailed(c, err)
	}
	return resp, nil
}

// followContext ends at Ctrl-C or SIGTERM, for commands that follow a build.
func followContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmdContext(cmd), os.Interrupt, syscall.SIGTERM)
}

func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// completeBuilds offers the ids of recent builds, asking the coordinator.
func (f *adminFlags) completeBuilds(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return f.complete(cmd, func(ctx context.Context, c *admin.Client) ([]cobra.Completion, error) {
		resp, err := c.ListBuilds(ctx, &fleet.ListBuildsRequest{Limit: 50})
		if err != nil {
			return nil, err
		}
		var out []cobra.Completion
		for _, b := range resp.GetBuilds() {
			out = append(out, cobra.CompletionWithDesc(b.GetId(), b.GetRepo()+" "+b.GetState()+" "+b.GetResult()))
		}
		return out, nil
	})
}

// completeAgents offers the ids and names of agents.
func (f *adminFlags) completeAgents(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return f.complete(cmd, func(ctx context.Context, c *admin.Client) ([]cobra.Completion, error) {
		resp, err := c.ListAgents(ctx, &fleet.ListAgentsRequest{})
		if err != nil {
			return nil, err
		}
		var out []cobra.Completion
		for _, a := range resp.GetAgents() {
			out = append(out, cobra.CompletionWithDesc(a.GetId(), a.GetName()+" "+a.GetState()))
			if a.GetName() != "" {
				out = append(out, cobra.CompletionWithDesc(a.GetName(), a.GetId()+" "+a.GetState()))
			}
		}
		return out, nil
	})
}

func (f *adminFlags) complete(cmd *cobra.Command, list func(context.Context, *admin.Client) ([]cobra.Completion, error)) ([]cobra.Completion, cobra.ShellCompDirective) {
	c, err := f.dial(cmd)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(cmdContext(cmd), 3*time.Second)
	defer cancel()
	out, err := list(ctx, c)
	if err != nil {
		cobra.CompDebugln(admin.Describe(err, c.Server), true)
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
