package main

import (
	"bytes"
	"os"
	"testing"
)

// The shipped trace is this program's output, not edited by hand.
func TestShippedTraceIsGenerated(t *testing.T) {
	want, err := os.ReadFile("../testdata/day.csv")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if err := generate(&got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Error("testdata/day.csv is not what gentrace writes: run go generate in coordinator/pool/sim")
	}
}
