package sqlstore

import (
	"context"
	"database/sql"
	"net/url"
	"time"
)

// Checkpoints. Left to itself, SQLite copies the WAL back into the database
// file inside the commit that takes the WAL past 1,000 pages: that commit's
// callers wait for the copy and its fsync (a webhook's answer then took
// several ms more). So commits never checkpoint (wal_autocheckpoint(0) on
// the writer) and a connection of its own does it in the background, in
// PASSIVE mode: it never waits for the writer or the readers, and they
// never wait for it.

// checkpointEvery is how often the background checkpoint runs.
const checkpointEvery = time.Second

func (s *Store) startCheckpoints(abs, timeout string) error {
	cp, err := sql.Open("sqlite", dsn(abs, url.Values{"_busy_timeout": {timeout}}))
	if err != nil {
		return err
	}
	cp.SetMaxOpenConns(1)
	if err := cp.Ping(); err != nil {
		_ = cp.Close()
		return err
	}
	s.cp, s.cpStop, s.cpStopped = cp, make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.cpStopped)
		t := time.NewTicker(checkpointEvery)
		defer t.Stop()
		for {
			select {
			case <-s.cpStop:
				return
			case <-t.C:
				// A failure leaves the WAL to the next run; nothing is lost.
				_, _ = cp.ExecContext(context.Background(), `PRAGMA wal_checkpoint(PASSIVE)`)
			}
		}
	}()
	return nil
}

// stopCheckpoints ends the checkpointer; closing the last connection then
// checkpoints what is left.
func (s *Store) stopCheckpoints() {
	close(s.cpStop)
	<-s.cpStopped
}
