package jobapi

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/pipeline"
)

func TestJobRoundTrip(t *testing.T) {
	for _, cpus := range []float64{2, 0.25, 1.5, 0.001} {
		in := roundTripJob
		in.CPUs = cpus
		out, err := JobFromProto(JobToProto(in))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Errorf("round trip:\n in %+v\nout %+v", in, out)
		}
	}
}

// A reader that knows only whole cpus gets them, or its default for a fraction.
func TestJobToProtoWholeCPUs(t *testing.T) {
	for cpus, want := range map[float64]int32{2: 2, 0.25: 0, 1.5: 0} {
		j := roundTripJob
		j.CPUs = cpus
		if got := JobToProto(j).GetCpus(); got != want {
			t.Errorf("cpus %g: %d on the wire, want %d", cpus, got, want)
		}
	}
	// And a writer that knows only whole cpus is read as before.
	j, err := JobFromProto(&JobSpec{Id: "a", Image: "x", Script: []string{"true"}, Cpus: 3})
	if err != nil || j.CPUs != 3 {
		t.Errorf("cpus 3 from an older writer: %+v %v", j, err)
	}
}

var roundTripJob = pipeline.Job{
	ID: "build", Image: "alpine", Script: []string{"make"}, Dependencies: []string{"fetch"},
	SaveArtifacts: []pipeline.Artifact{{ID: "bin", Path: "out"}}, RestoreArtifacts: []pipeline.Artifact{{ID: "src", Path: "src"}},
	Caches: []pipeline.Artifact{{ID: "m2", Path: ".m2"}}, CPUs: 2, Memory: 4 << 30, Env: map[string]string{"A": "1"},
	WorkDir: "sub", Timeout: 90 * time.Second, Shell: "bash", Labels: map[string]string{"k": "v"}, Pids: 512,
	Arch: pipeline.ArchARM, Expose: []int{5432, 8080}, CreditMultiplier: 3,
}

func TestJobFromProtoChecksLikeABuildFile(t *testing.T) {
	tests := []struct {
		name string
		spec *JobSpec
		want string
	}{
		{"no id", &JobSpec{Image: "x", Script: []string{"true"}}, "needs an id"},
		{"no image", &JobSpec{Id: "a", Script: []string{"true"}}, "image"},
		{"bad arch", &JobSpec{Id: "a", Image: "x", Arch: "riscv"}, `unknown architecture "riscv"`},
		{"bad port", &JobSpec{Id: "a", Image: "x", Expose: []int32{0}}, "expose[0]"},
		{"bad id", &JobSpec{Id: "../etc", Image: "x", Script: []string{"true"}}, "invalid id"},
		{"absolute cache", &JobSpec{Id: "a", Image: "x", Script: []string{"true"}, Caches: []*Artifact{{Id: "c", Path: "/usr/local/bin"}}},
			`caches[0]: path "/usr/local/bin" is absolute`},
		{"restore leaving the work dir", &JobSpec{Id: "a", Image: "x", Script: []string{"true"}, RestoreArtifacts: []*Artifact{{Id: "c", Path: "../../etc"}}},
			`restore-artifacts[0]: path "../../etc" leaves the work dir`},
		{"negative cpus", &JobSpec{Id: "a", Image: "x", Script: []string{"true"}, MilliCpus: -250}, "cpus: -0.25 is out of range"},
		{"negative pids", &JobSpec{Id: "a", Image: "x", Script: []string{"true"}, Pids: -1}, "pids: -1 is out of range"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := JobFromProto(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	j, err := JobFromProto(&JobSpec{Id: "a", Image: "x", Script: []string{"true"}})
	if err != nil {
		t.Fatal(err)
	}
	if j.CPUs != pipeline.DefaultCPUs || j.Memory != pipeline.DefaultMemory || j.Timeout != pipeline.DefaultTimeout {
		t.Errorf("defaults not filled: %+v", j)
	}
}
