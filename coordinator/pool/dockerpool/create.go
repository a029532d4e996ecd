package dockerpool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/monkeyci/monkeyci/agent/engine"
	"github.com/monkeyci/monkeyci/coordinator/pool"
)

// Where things are inside an agent's container.
const (
	socketInContainer = "/var/run/docker.sock"
	caInContainer     = "/etc/monkeyci/ca.pem"
	// hostCerts holds the host's CA certificates: the agent image has none,
	// and the agent needs them to fetch sources over https.
	hostCerts = "/etc/ssl/certs"
)

// Create makes and starts n agent containers. On a failure it returns the
// ones made before it, with the error; the failed one is cleaned up.
func (p *Provider) Create(ctx context.Context, n int) ([]pool.Instance, error) {
	var made []pool.Instance
	for range n {
		inst, err := p.createOne(ctx)
		if err != nil {
			return made, fmt.Errorf("docker pool %s: %w", p.cfg.Pool, err)
		}
		p.cfg.Logger.Info("agent container started", "instance", inst.ID)
		made = append(made, inst)
	}
	return made, nil
}

func (p *Provider) createOne(ctx context.Context) (pool.Instance, error) {
	id, err := p.newID()
	if err != nil {
		return pool.Instance{}, err
	}
	dir := p.dir(id)
	for _, d := range []string{filepath.Join(dir, "state"), filepath.Join(dir, "tmp")} {
		// 0o700: the state dir keeps the agent's credential.
		if err := os.MkdirAll(d, 0o700); err != nil {
			return pool.Instance{}, fmt.Errorf("instance %s: %w", id, err)
		}
	}
	created := time.Now()
	cid, err := p.cfg.Engine.Create(ctx, p.spec(id, dir, hasDir(hostCerts)))
	if err == nil {
		err = p.cfg.Engine.Start(ctx, cid)
	}
	if err != nil {
		// What was made goes, even when ctx was what failed.
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		return pool.Instance{}, errors.Join(fmt.Errorf("instance %s: %w", id, err), p.remove(cleanup, id))
	}
	return pool.Instance{ID: id, Phase: pool.Running, Created: created}, nil
}

// spec is the agent's container. Pure, for the tests.
func (p *Provider) spec(id, dir string, certs bool) engine.ContainerSpec {
	c := p.cfg
	cmd := []string{"agent",
		"--coordinator", c.Coordinator,
		"--name", id,
		"--instance", id,
		"--pause=" + strconv.FormatBool(c.Pause),
		"--state-dir", filepath.Join(dir, "state"),
	}
	if c.CPUs > 0 {
		cmd = append(cmd, "--cpus", strconv.FormatFloat(c.CPUs, 'f', -1, 64))
	}
	if c.Memory != "" {
		cmd = append(cmd, "--memory", c.Memory)
	}
	if c.Labels != "" {
		cmd = append(cmd, "--labels", c.Labels)
	}
	mounts := []engine.Mount{
		{Source: c.DockerSocket, Target: socketInContainer},
		// The same path inside as on the host: the agent bind-mounts what
		// it keeps there into its builds' containers, and the engine reads
		// those paths on the host.
		{Source: dir, Target: dir},
	}
	if c.TLS {
		cmd = append(cmd, "--ca", caInContainer)
		mounts = append(mounts, engine.Mount{Source: c.CAFile, Target: caInContainer, ReadOnly: true})
	} else {
		cmd = append(cmd, "--tls=false")
	}
	if certs {
		mounts = append(mounts, engine.Mount{Source: hostCerts, Target: hostCerts, ReadOnly: true})
	}
	return engine.ContainerSpec{
		Name:  id,
		Image: p.image,
		Cmd:   cmd,
		// The token goes in the environment: a command line is visible to
		// every user of the host (ps, docker inspect's Args).
		Env:    []string{"MONKEYCI_JOIN_TOKEN=" + c.JoinToken, "TMPDIR=" + filepath.Join(dir, "tmp")},
		Labels: map[string]string{LabelPool: c.Pool},
		Mounts: mounts,
		// The host's network, so that 127.0.0.1 is the coordinator's
		// machine. The agent's scripts and jobs get their own networks.
		Network: "host",
	}
}

// instancePrefix starts the name of every container of the pool.
func instancePrefix(pool string) string { return "monkeyci-pool-" + pool + "-" }

// idHexLen is the length of an instance id's random part. Short, since the
// id is in the agents' socket paths (see socketPathLen).
const idHexLen = 8

func (p *Provider) newID() (string, error) {
	var b [idHexLen / 2]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("instance id: %w", err)
	}
	return instancePrefix(p.cfg.Pool) + hex.EncodeToString(b[:]), nil
}

// owns says whether id is the name of one of this pool's instances. Only
// such ids are ever stopped, removed or have their folder deleted: an
// id of another pool ("a-b" when this one is "a") or a path must never be.
func (p *Provider) owns(id string) bool {
	rest, ok := strings.CutPrefix(id, instancePrefix(p.cfg.Pool))
	if !ok || len(rest) != idHexLen {
		return false
	}
	_, err := hex.DecodeString(rest)
	return err == nil
}

// dir is the host folder of an instance.
func (p *Provider) dir(id string) string { return filepath.Join(p.cfg.WorkDir, id) }

func hasDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}
