package pipeline

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.golden")

// TestGolden parses each testdata/golden file and compares what verify would
// print (the plan, or the errors) with NAME.EXT.golden.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/golden/*")
	for _, file := range files {
		if strings.HasSuffix(file, ".golden") {
			continue
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var got string
			jobs, err := Parse(file, data)
			if err == nil {
				var p *Plan
				if p, err = Validate(jobs); err == nil {
					got = p.Describe()
				}
			}
			if err != nil {
				got = err.Error() + "\n"
			}
			golden := file + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}
