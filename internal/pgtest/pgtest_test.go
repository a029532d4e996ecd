package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The server takes connections, keeps what was committed across a
// restart, and the connections made before it fail rather than hang.
func TestServerKeepsItsDataAcrossARestart(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before')"); err != nil {
		t.Fatal(err)
	}
	s.Restart()
	if err := conn.Ping(ctx); err == nil {
		t.Error("a connection from before the restart still answers")
	}
	again, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close(context.Background())
	var v string
	if err := again.QueryRow(ctx, "SELECT v FROM kept").Scan(&v); err != nil || v != "before" {
		t.Errorf("after the restart: %q, %v; want the row from before", v, err)
	}
}
