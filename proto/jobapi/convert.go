package jobapi

import (
	"errors"
	"math"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/monkeyci/monkeyci/pipeline"
)

// JobToProto is the wire form of a job.
func JobToProto(j pipeline.Job) *JobSpec {
	return &JobSpec{
		Id:               j.ID,
		Image:            j.Image,
		Script:           j.Script,
		Dependencies:     j.Dependencies,
		SaveArtifacts:    artifactsToProto(j.SaveArtifacts),
		RestoreArtifacts: artifactsToProto(j.RestoreArtifacts),
		Caches:           artifactsToProto(j.Caches),
		Cpus:             wholeCPUs(j.CPUs),
		MilliCpus:        j.MilliCPUs(),
		Memory:           j.Memory,
		Pids:             j.Pids,
		Env:              j.Env,
		WorkDir:          j.WorkDir,
		Timeout:          durationpb.New(j.Timeout),
		Shell:            j.Shell,
		Entrypoint:       j.Entrypoint,
		Cmd:              j.Cmd,
		Labels:           j.Labels,
		Arch:             j.Arch,
		Expose:           PortsToProto(j.Expose),
		CreditMultiplier: int32(j.CreditMultiplier),
	}
}

// JobFromProto reads a job sent by a script, with the defaults and checks
// a job in a build file gets.
func JobFromProto(s *JobSpec) (pipeline.Job, error) {
	if s == nil || s.GetId() == "" {
		return pipeline.Job{}, errors.New("a job needs an id")
	}
	return pipeline.PrepareJob(pipeline.Job{
		ID:               s.GetId(),
		Image:            s.GetImage(),
		Script:           s.GetScript(),
		Dependencies:     s.GetDependencies(),
		SaveArtifacts:    artifactsFromProto(s.GetSaveArtifacts()),
		RestoreArtifacts: artifactsFromProto(s.GetRestoreArtifacts()),
		Caches:           artifactsFromProto(s.GetCaches()),
		CPUs:             cpusFromProto(s),
		Memory:           s.GetMemory(),
		Pids:             s.GetPids(),
		Env:              s.GetEnv(),
		WorkDir:          s.GetWorkDir(),
		Timeout:          s.GetTimeout().AsDuration(),
		Shell:            s.GetShell(),
		Entrypoint:       s.GetEntrypoint(),
		Cmd:              s.GetCmd(),
		Labels:           s.GetLabels(),
		Arch:             s.GetArch(),
		Expose:           PortsFromProto(s.GetExpose()),
		CreditMultiplier: int(s.GetCreditMultiplier()),
	})
}

// PortsToProto is a list of ports on the wire.
func PortsToProto(ports []int) []int32 {
	var out []int32
	for _, p := range ports {
		out = append(out, int32(p))
	}
	return out
}

// PortsFromProto is a list of ports off the wire.
func PortsFromProto(ports []int32) []int {
	var out []int
	for _, p := range ports {
		out = append(out, int(p))
	}
	return out
}

// wholeCPUs is cpus for a reader that knows only whole CPUs: 0 (its
// default) when cpus is a fraction.
func wholeCPUs(cpus float64) int32 {
	if cpus != math.Trunc(cpus) || cpus > math.MaxInt32 {
		return 0
	}
	return int32(cpus)
}

// cpusFromProto prefers milli_cpus, which can say a fraction.
func cpusFromProto(s *JobSpec) float64 {
	if m := s.GetMilliCpus(); m != 0 {
		return float64(m) / 1000
	}
	return float64(s.GetCpus())
}

func artifactsToProto(as []pipeline.Artifact) []*Artifact {
	out := make([]*Artifact, 0, len(as))
	for _, a := range as {
		out = append(out, &Artifact{Id: a.ID, Path: a.Path, KeyFiles: a.KeyFiles, Build: a.Build})
	}
	return out
}

func artifactsFromProto(as []*Artifact) []pipeline.Artifact {
	var out []pipeline.Artifact
	for _, a := range as {
		out = append(out, pipeline.Artifact{ID: a.GetId(), Path: a.GetPath(), KeyFiles: a.GetKeyFiles(), Build: a.GetBuild()})
	}
	return out
}
