package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/go-hclog"

	"github.com/monkeyci/monkeyci/agent/docker"
	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/pool"
	"github.com/monkeyci/monkeyci/coordinator/pool/dockerpool"
	"github.com/monkeyci/monkeyci/coordinator/pool/oci"
	"github.com/monkeyci/monkeyci/coordinator/server"
	"github.com/monkeyci/monkeyci/packer"
)

// dockerSettings is --config's pool.docker section.
type dockerSettings struct {
	// Name names the pool's containers (default "default").
	Name string `yaml:"name"`
	// WorkDir holds each agent's folder (default: the data dir's pool/).
	WorkDir string `yaml:"work-dir"`
	// Binary goes into the agents' image (default: this binary).
	Binary string `yaml:"binary"`
	Labels string `yaml:"labels"`
}

// ociSettings is --config's pool.oci section.
type ociSettings struct {
	Compartment        string  `yaml:"compartment"`
	InstancePool       string  `yaml:"instance-pool"`
	AvailabilityDomain string  `yaml:"availability-domain"`
	Subnet             string  `yaml:"subnet"`
	Image              string  `yaml:"image"`
	Shape              string  `yaml:"shape"`
	DisplayName        string  `yaml:"display-name"`
	ConfigFile         string  `yaml:"config-file"`
	Profile            string  `yaml:"profile"`
	InstancePrincipal  bool    `yaml:"instance-principal"`
	MemoryGBs          float32 `yaml:"memory-gbs"` // default: --pool-agent-memory
	// Coordinator is the gRPC address instances dial (the coordinator's
	// public address, not its listen address).
	Coordinator string `yaml:"coordinator"`
	Labels      string `yaml:"labels"`
}

// poolConfig turns the --pool flags and --config into the server's pool.
func (p *poolFlags) poolConfig(dataDir string) (*server.PoolConfig, error) {
	if p.provider == "" {
		return nil, nil
	}
	agentCap, err := capacityOf(p.agentCPUs, p.agentMemory)
	if err != nil {
		return nil, fmt.Errorf("--pool-agent-cpus/--pool-agent-memory: %w", err)
	}
	fc, err := loadFileConfig(p.config)
	if err != nil {
		return nil, err
	}
	pc := &server.PoolConfig{
		Provider: p.provider,
		Scaler: pool.Config{Min: p.min, Max: p.max, Idle: p.idle, IdleTimeout: p.idleTimeout,
			UpCooldown: pool.DefaultUpCooldown, JoinTimeout: p.joinTimeout},
		Agent: coordinator.Capacity{MilliCPUs: agentCap.MilliCPUs, Memory: agentCap.Memory},
		Pause: true,
		Every: p.every,
	}
	switch p.provider {
	case "docker":
		d := fc.Pool.Docker
		pc.Make = func(ctx context.Context, s *server.Server) (pool.Provider, error) {
			return makeDockerPool(ctx, d, p, dataDir, s)
		}
	case "oci":
		o := fc.Pool.OCI
		pc.Make = func(ctx context.Context, s *server.Server) (pool.Provider, error) {
			return makeOCIPool(ctx, o, p, agentCap.Memory, s)
		}
	case "static":
		names := fc.Pool.Static.Instances
		if len(names) == 0 {
			return nil, fmt.Errorf("--pool static: list the instances in --config under pool.static.instances")
		}
		pc.Make = func(context.Context, *server.Server) (pool.Provider, error) { return pool.Static{Names: names}, nil }
	default:
		return nil, fmt.Errorf("--pool %q: say docker, oci or static", p.provider)
	}
	// The flags alone; whether a build fits an agent the server says.
	check := pc.Scaler
	check.BuildsPerAgent = 1
	if err := check.Validate(); err != nil {
		return nil, err
	}
	return pc, nil
}

func makeDockerPool(ctx context.Context, d dockerSettings, p *poolFlags, dataDir string, s *server.Server) (pool.Provider, error) {
	engine, err := docker.New(hclog.NewNullLogger())
	if err != nil {
		return nil, fmt.Errorf("docker engine: %w", err)
	}
	if d.Name == "" {
		d.Name = "default"
	}
	if d.WorkDir == "" {
		d.WorkDir = filepath.Join(dataDir, "pool") // dockerpool makes it absolute
	}
	return dockerpool.New(ctx, dockerpool.Config{
		Engine: engine, Binary: d.Binary, Pool: d.Name,
		Coordinator: s.GRPCAddr, JoinToken: s.JoinToken, TLS: s.CAFile != "", CAFile: s.CAFile,
		CPUs: p.agentCPUs, Memory: p.agentMemory, Labels: d.Labels, Pause: true, WorkDir: d.WorkDir,
	})
}

func makeOCIPool(ctx context.Context, o ociSettings, p *poolFlags, agentMemory int64, s *server.Server) (pool.Provider, error) {
	if o.Coordinator == "" {
		return nil, fmt.Errorf("--config: pool.oci.coordinator: give the gRPC address instances dial (host:port)")
	}
	if s.CAFile == "" {
		return nil, fmt.Errorf("instances join over TLS: run the coordinator with --tls")
	}
	ca, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	labels, err := parseLabels(o.Labels)
	if err != nil {
		return nil, fmt.Errorf("--config: pool.oci.labels: %w", err)
	}
	userData, err := packer.UserDataBase64(packer.UserDataConfig{Coordinator: o.Coordinator, JoinToken: s.JoinToken, CACert: string(ca), Labels: labels})
	if err != nil {
		return nil, fmt.Errorf("--config: pool.oci: %w", err)
	}
	mem := o.MemoryGBs
	if mem == 0 {
		mem = float32(agentMemory) / (1 << 30)
	}
	prov, err := oci.New(ctx, oci.Config{
		CompartmentID: o.Compartment, InstancePoolID: o.InstancePool, AvailabilityDomain: o.AvailabilityDomain,
		SubnetID: o.Subnet, ImageID: o.Image, Shape: o.Shape,
		// An OCPU is two hardware threads: the agent's CPUs are threads.
		OCPUs: float32(p.agentCPUs) / 2, MemoryGBs: mem, UserData: userData, DisplayName: o.DisplayName,
		ConfigFile: o.ConfigFile, Profile: o.Profile, InstancePrincipal: o.InstancePrincipal,
	})
	if err != nil {
		return nil, err
	}
	if err := prov.Ensure(ctx); err != nil {
		return nil, err
	}
	return prov, nil
}
