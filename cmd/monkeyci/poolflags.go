package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/monkeyci/monkeyci/coordinator/pool"
)

// poolFlags are the coordinator's --pool-* flags.
type poolFlags struct {
	provider    string
	min, max    int
	idle        int
	idleTimeout time.Duration
	agentCPUs   float64
	agentMemory string
	config      string
	every       time.Duration
	joinTimeout time.Duration
}

func addPoolFlags(f *pflag.FlagSet) *poolFlags {
	p := &poolFlags{}
	f.StringVar(&p.provider, "pool", "", "run an autoscaled agent pool: docker (agents as local containers), oci (an Oracle Cloud instance pool) or static (a fixed list); settings in --config")
	f.IntVar(&p.min, "pool-min", 0, "fewest agents the pool keeps")
	f.IntVar(&p.max, "pool-max", 5, "most agents the pool makes")
	f.IntVar(&p.idle, "pool-idle", 1, "idle agents kept warm beyond those the queue needs")
	f.DurationVar(&p.idleTimeout, "pool-idle-timeout", pool.DefaultIdleTimeout, "how long an agent beyond the warm ones may idle before it is drained and removed")
	f.Float64Var(&p.agentCPUs, "pool-agent-cpus", 2, "CPUs each pool agent offers")
	f.StringVar(&p.agentMemory, "pool-agent-memory", "8g", "memory each pool agent offers, like 8g")
	f.DurationVar(&p.joinTimeout, "pool-join-timeout", pool.DefaultJoinTimeout, "an instance whose agent has not joined (or has been gone) this long is destroyed")
	f.DurationVar(&p.every, "pool-step", pool.DefaultStep, "time between the scaler's looks at the queue and the pool")
	f.StringVar(&p.config, "config", "", "a YAML file with the pool provider's settings (section pool.docker, pool.oci or pool.static)")
	return p
}

// fileConfig is the coordinator's --config file.
type fileConfig struct {
	Pool struct {
		Docker dockerSettings `yaml:"docker"`
		OCI    ociSettings    `yaml:"oci"`
		Static struct {
			Instances []string `yaml:"instances"`
		} `yaml:"static"`
	} `yaml:"pool"`
}

// loadFileConfig reads --config; an unknown key is an error naming its
// line, so a typo does not silently fall back to a default.
func loadFileConfig(path string) (fileConfig, error) {
	var fc fileConfig
	if path == "" {
		return fc, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fc, fmt.Errorf("--config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fc, fmt.Errorf("%s: %w", path, err)
	}
	return fc, nil
}
