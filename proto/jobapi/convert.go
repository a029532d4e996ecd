package jobapi

import (
	"errors"

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
		Cpus:             int32(j.CPUs),
		Memory:           j.Memory,
		Env:              j.Env,
		WorkDir:          j.WorkDir,
		Timeout:          durationpb.New(j.Timeout),
		Shell:            j.Shell,
		Entrypoint:       j.Entrypoint,
		Cmd:              j.Cmd,
		Labels:           j.Labels,
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
		CPUs:             int(s.GetCpus()),
		Memory:           s.GetMemory(),
		Env:              s.GetEnv(),
		WorkDir:          s.GetWorkDir(),
		Timeout:          s.GetTimeout().AsDuration(),
		Shell:            s.GetShell(),
		Entrypoint:       s.GetEntrypoint(),
		Cmd:              s.GetCmd(),
		Labels:           s.GetLabels(),
	})
}

func artifactsToProto(as []pipeline.Artifact) []*Artifact {
	out := make([]*Artifact, 0, len(as))
	for _, a := range as {
		out = append(out, &Artifact{Id: a.ID, Path: a.Path})
	}
	return out
}

func artifactsFromProto(as []*Artifact) []pipeline.Artifact {
	var out []pipeline.Artifact
	for _, a := range as {
		out = append(out, pipeline.Artifact{ID: a.GetId(), Path: a.GetPath()})
	}
	return out
}
