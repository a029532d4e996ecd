package sqlstore

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/events"
)

// running creates build id and assigns it as attempt 1.
func running(t testing.TB, s *Store, id string) {
	t.Helper()
	ctx := context.Background()
	must(t, s.CreateBuild(ctx, build(id, 0)))
	must(t, s.Assign(ctx, id, 1, "ag", time.Now().Add(time.Hour)))
}

func ev(id string, attempt int, seq int64) coordinator.StoredEvent {
	return coordinator.StoredEvent{BuildID: id, Attempt: attempt, Seq: seq, Event: events.Event{Type: events.JobEnd, Job: fmt.Sprint("job-", seq)}}
}

// TestKilledProcessLosesNothing writes from a child process that is killed
// with SIGKILL mid-stream: every write it acknowledged is in the file.
func TestKilledProcessLosesNothing(t *testing.T) {
	if path := os.Getenv("SQLSTORE_CHILD_DB"); path != "" {
		childWriter(path)
		return
	}
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := dbPath(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledProcessLosesNothing$", "-test.v=false")
	cmd.Env = append(os.Environ(), "SQLSTORE_CHILD_DB="+path)
	out, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	acked := -1
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "acked ")); err == nil {
			acked = n
			if acked >= 300 {
				break
			}
		}
	}
	must(t, cmd.Process.Signal(syscall.SIGKILL))
	_ = cmd.Wait()
	if acked < 300 {
		t.Fatalf("the child acknowledged only %d writes", acked)
	}
	s := openStore(t, path)
	ctx := context.Background()
	for i := 0; i <= acked; i++ {
		id := fmt.Sprint("k", i)
		b, err := s.GetBuild(ctx, id)
		if err != nil || b.State != coordinator.Running || b.Attempt != 1 {
			t.Fatalf("acknowledged build %s after the kill: %+v, %v", id, b, err)
		}
		if last, err := s.LastSeq(ctx, id, 1); err != nil || last != 2 {
			t.Fatalf("acknowledged events of %s after the kill: LastSeq %d, %v", id, last, err)
		}
	}
}

// childWriter writes builds until it is killed, saying which are stored.
func childWriter(path string) {
	s, err := Open(path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	for i := 0; ; i++ {
		id := fmt.Sprint("k", i)
		if err := s.CreateBuild(ctx, build(id, i)); err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		if err := s.Assign(ctx, id, 1, "ag", time.Now().Add(time.Hour)); err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		for seq := int64(2); seq >= 1; seq-- {
			if _, err := s.AppendEvent(ctx, ev(id, 1, seq)); err != nil {
				fmt.Println(err)
				os.Exit(2)
			}
		}
		fmt.Printf("acked %d\n", i)
	}
}
