package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/coordinator/migrate"
)

func newMigrateCommand(stdout, stderr io.Writer) *cobra.Command {
	var from, to string
	cmd := &cobra.Command{
		Use:   "migrate --from DATA_DIR|postgres://... --to postgres://...|DATA_DIR",
		Short: "Copy a coordinator's state between SQLite (a data dir) and PostgreSQL",
		Long: `migrate copies a coordinator's state from one store to another: from the
SQLite file of a data dir to PostgreSQL, when one coordinator becomes
several (--database), or back. It copies the builds and their events, the
agents, the tokens, the repositories and their secrets (still sealed: give
the new coordinators the same master key, MONKEYCI_MASTER_KEY or the data
dir's master.key), the pool's state, and the logs of attempts not yet moved
to the blob store; the blob store itself (--blobs) stays where it is.

Stop the coordinator first: the copy reads its store table by table. The
rows are written in one transaction, all of them or none, then the logs,
stream by stream (a copy that fails there leaves the rows: drop the database
before trying again). It writes only into an empty store: a new PostgreSQL
database, or a data dir without a state.db.`,
		Example: `  monkeyci migrate --from ~/.cache/monkeyci/coordinator --to postgres://monkeyci:PASSWORD@db.internal:5432/monkeyci
  monkeyci migrate --from "$MONKEYCI_DATABASE" --to /var/lib/monkeyci`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" {
				return usageError(errors.New("give both --from and --to: a coordinator's data dir, or postgres://USER:PASSWORD@HOST:5432/DB"))
			}
			if from == to {
				return usageError(errors.New("--from and --to are the same store"))
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			err := migrate.Run(ctx, from, to, func(what string, n int) { fmt.Fprintf(stderr, "copied %d %s\n", n, what) })
			if err != nil {
				return failedError(err)
			}
			fmt.Fprintln(stdout, "done: start the coordinators with the new store")
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the store to copy: a coordinator's data dir, or postgres://USER:PASSWORD@HOST:5432/DB")
	cmd.Flags().StringVar(&to, "to", "", "the empty store to copy into: postgres://USER:PASSWORD@HOST:5432/DB, or a new data dir")
	return cmd
}
