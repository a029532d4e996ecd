package logstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestRemoveAttemptLeavesTheBuildsOtherAttempts(t *testing.T) {
	s := open(t)
	one := Key{Build: "b1", Attempt: 1, Job: "x", Stream: Stdout}
	two := Key{Build: "b1", Attempt: 2, Job: "x", Stream: Stdout}
	s.Write(one, 0, []byte("first"))
	s.Write(two, 0, []byte("second"))
	s.Write(Key{Build: "b2", Attempt: 1, Stream: Stdout}, 0, []byte("other"))
	if got, err := s.Builds(); !slices.Equal(got, []string{"b1", "b2"}) || err != nil {
		t.Errorf("Builds = %v, %v", got, err)
	}
	if got, err := s.WithLogs([]string{"b2", "none", "../b1", "b1"}); !slices.Equal(got, []string{"b2", "b1"}) || err != nil {
		t.Errorf("WithLogs = %v, %v; want [b2 b1]", got, err)
	}
	if err := s.RemoveAttempt("b1", 1); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Attempts("b1"); !slices.Equal(got, []int{2}) {
		t.Errorf("attempts after removing the first: %v", got)
	}
	if got := content(t, s, two); got != "second" {
		t.Errorf("the second attempt holds %q", got)
	}
	// The build's folder goes with its last attempt.
	if err := s.RemoveAttempt("b1", 2); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Root(), "builds", "b1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the build's folder after its last attempt went: %v", err)
	}
	if got, err := s.Builds(); !slices.Equal(got, []string{"b2"}) || err != nil {
		t.Errorf("Builds = %v, %v", got, err)
	}
	// Again, or what never was, is fine; a bad key is not.
	if err := s.RemoveAttempt("b1", 2); err != nil {
		t.Error(err)
	}
	if err := s.RemoveAttempt("b1", 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("attempt 0: %v", err)
	}
}

// A follower of a removed attempt learns it; the first write of the next
// attempt, making its folders as the last of the old goes, succeeds.
func TestRemoveAttemptWhileTheNextIsWritten(t *testing.T) {
	s := open(t)
	old := Key{Build: "b0", Attempt: 1, Stream: Stdout}
	s.Write(old, 0, []byte("old"))
	followed := make(chan error, 1)
	w, copied := firstWrite()
	go func() { followed <- s.Follow(context.Background(), old, 0, w, nil) }()
	<-copied // following, then removed
	if err := s.RemoveAttempt("b0", 1); err != nil {
		t.Fatal(err)
	}
	if err := <-followed; !errors.Is(err, ErrRemoved) {
		t.Errorf("the old attempt's follower: %v", err)
	}
	for i := range 300 {
		b := fmt.Sprint("b", i)
		s.Write(Key{Build: b, Attempt: 1, Stream: Stdout}, 0, []byte("old"))
		next := Key{Build: b, Attempt: 2, Stream: Stdout}
		wrote := make(chan error, 1)
		go func() {
			_, err := s.Write(next, 0, []byte("new"))
			wrote <- err
		}()
		if err := s.RemoveAttempt(b, 1); err != nil {
			t.Fatal(err)
		}
		if err := <-wrote; err != nil {
			t.Fatalf("the next attempt's first write: %v", err)
		}
		if got := content(t, s, next); got != "new" {
			t.Fatalf("the next attempt holds %q", got)
		}
	}
}
