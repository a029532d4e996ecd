package pipeline

import (
	"strings"
	"testing"
)

func TestArchivePath(t *testing.T) {
	for _, tc := range []struct {
		path, refused string // refused: part of the error, "" when accepted
	}{
		{"node_modules", ""},
		{"out/app", ""},
		{".", ""},
		{"a/../b", ""},
		{"./.cache/", ""},
		{"", "must not be empty"},
		{"/usr/local/bin", `"/usr/local/bin" is absolute`},
		{"/", "is absolute"},
		{"..", "leaves the work dir"},
		{"../x", "leaves the work dir"},
		{"a/../../x", "leaves the work dir"},
		{"./../../../etc", "leaves the work dir"},
		{"a\x00b", "NUL"},
	} {
		err := ArchivePath(tc.path)
		switch {
		case tc.refused == "" && err != nil:
			t.Errorf("ArchivePath(%q) = %v, want accepted", tc.path, err)
		case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
			t.Errorf("ArchivePath(%q) = %v, want an error saying %q", tc.path, err, tc.refused)
		}
	}
}

// TestPrepareJobRefusesArchivePaths: jobs a build script starts one at a
// time are held to the same paths as jobs of a file.
func TestPrepareJobRefusesArchivePaths(t *testing.T) {
	for _, j := range []Job{
		{ID: "a", Image: "x", Script: []string{"true"}, Caches: []Artifact{{ID: "c", Path: "/usr/local/bin"}}},
		{ID: "a", Image: "x", Script: []string{"true"}, SaveArtifacts: []Artifact{{ID: "c", Path: "../up"}}},
		{ID: "a", Image: "x", Script: []string{"true"}, RestoreArtifacts: []Artifact{{ID: "c", Path: "/"}}},
		{ID: "a", Image: "x", Script: []string{"true"}, RestoreArtifacts: []Artifact{{ID: "c", Path: "a"}}, Caches: []Artifact{{ID: "d", Path: "a/b"}}},
		{ID: "a", Image: "x", Script: []string{"true"}, Caches: []Artifact{{ID: "c", Path: "a/b/"}, {ID: "d", Path: "a"}}},
		{ID: "a", Image: "x", Script: []string{"true"}, Caches: []Artifact{{ID: "c", Path: "."}, {ID: "d", Path: "x"}}},
	} {
		if _, err := PrepareJob(j); err == nil || !strings.Contains(err.Error(), "path") {
			t.Errorf("PrepareJob(%+v) = %v, want the path refused", j, err)
		}
	}
}

// Restores side by side, and saves anywhere, are fine.
func TestPrepareJobTakesRestoresApart(t *testing.T) {
	j := Job{ID: "a", Image: "x", Script: []string{"true"},
		RestoreArtifacts: []Artifact{{ID: "c", Path: "a"}}, Caches: []Artifact{{ID: "d", Path: "ab"}, {ID: "e", Path: "b/a"}},
		SaveArtifacts: []Artifact{{ID: "f", Path: "a/inner"}}}
	if _, err := PrepareJob(j); err != nil {
		t.Errorf("PrepareJob: %v", err)
	}
}
