package main

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/monkeyci/monkeyci/admin"
	"github.com/monkeyci/monkeyci/pipeline"
	"github.com/monkeyci/monkeyci/proto/fleet"
)

func newArtifactsCommand(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "artifacts",
		Short: "List and download the artifacts a build saved",
		Long: `artifacts lists and downloads what a build's jobs saved (save-artifacts in
the build file). The coordinator keeps each artifact as a tar archive of the
path the job declared, its entries relative to that path. Where a build's ID
is asked for, the start of it will do when it names exactly one build.`,
		Args: cobra.NoArgs,
	}
	flags := addAdminFlags(cmd)

	ls := &cobra.Command{
		Use:               "ls BUILD",
		Aliases:           []string{"list"},
		Short:             "List a build's artifacts: id, size, digest, when saved",
		Example:           `  monkeyci artifacts ls 3f2a9c`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: flags.completeBuilds,
	}
	lsOut := addOutputFlag(ls)
	ls.RunE = func(cmd *cobra.Command, args []string) error {
		resp, err := adminCall(cmd, flags, fleet.AdminClient.ListArtifacts, &fleet.BuildRef{Id: args[0]})
		if err != nil {
			return err
		}
		return lsOut.print(stdout, admin.Artifacts(resp), func(w io.Writer) error {
			if len(resp.GetArtifacts()) == 0 {
				fmt.Fprintf(stderr, "monkeyci: build %s saved no artifacts\n", resp.GetBuild())
				return nil
			}
			return admin.ArtifactsTable(w, resp.GetArtifacts(), time.Now())
		})
	}
	cmd.AddCommand(ls, newArtifactsGetCommand(flags, stdout, stderr))
	return cmd
}

// artifactGet is one `artifacts get`: what to fetch and where it goes.
type artifactGet struct {
	build, id string
	out, dir  string // -o and -x
	stdout    io.Writer
	stderr    io.Writer
}

func newArtifactsGetCommand(flags *adminFlags, stdout, stderr io.Writer) *cobra.Command {
	g := &artifactGet{stdout: stdout, stderr: stderr}
	cmd := &cobra.Command{
		Use:   "get BUILD ID [-o FILE | -x DIR]",
		Short: "Download an artifact: as ID.tar.gz, to a file, or unpacked into a directory",
		Long: `get downloads artifact ID of build BUILD. By default it writes ID.tar.gz in
the current directory; -o FILE writes FILE instead (a name ending in .tar
gets the tar archive as the coordinator keeps it, any other name it
gzipped; -o - writes the gzipped archive to stdout). -x DIR unpacks the
archive into DIR (made if missing): an artifact saved from a directory
becomes DIR's contents, one saved from a file becomes DIR/ID.

The bytes are checked against the size and sha256 the coordinator keeps
for the artifact; a download that differs fails, and leaves no file.

The archive was written by whatever the build ran, so -x takes it as
hostile: it is downloaded to a temporary file (TMPDIR) and checked before
anything is written, and then written only under DIR. An absolute name, a
name with "..", or a name under a symlink the archive made refuses the
whole archive; symlinks are made as they are but never followed to write,
neither the archive's nor those DIR held before; hard links, devices and
fifos are skipped with a warning.`,
		Example: `  monkeyci artifacts get 3f2a9c bin
  monkeyci artifacts get 3f2a9c bin -o bin.tar
  monkeyci artifacts get 3f2a9c bin -o - | tar -tz
  monkeyci artifacts get 3f2a9c bin -x ./out`,
		Args:              cobra.ExactArgs(2),
		ValidArgsFunction: flags.completeArtifacts,
	}
	cmd.Flags().StringVarP(&g.out, "output", "o", "", "write to this `FILE` (default ID.tar.gz; .tar: not gzipped; -: stdout)")
	cmd.Flags().StringVarP(&g.dir, "extract", "x", "", "unpack into this `DIR` instead of writing an archive")
	cmd.MarkFlagsMutuallyExclusive("output", "extract")
	_ = cmd.MarkFlagDirname("extract")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		g.build, g.id = args[0], args[1]
		if err := g.check(cmd); err != nil {
			return usageError(err)
		}
		c, err := flags.dial(cmd)
		if err != nil {
			return err
		}
		defer c.Close()
		ctx, stop := followContext(cmd) // a large download may take long: until Ctrl-C
		defer stop()
		switch {
		case g.dir != "":
			return g.unpack(ctx, c)
		case g.out == "-":
			_, err := g.fetch(ctx, c, stdout, true)
			return err
		}
		return g.writeFile(ctx, c)
	}
	return cmd
}

// check refuses flags and arguments that cannot work, before any call.
func (g *artifactGet) check(cmd *cobra.Command) error {
	if !pipeline.ValidID(g.id) {
		return fmt.Errorf("artifact id %.64q: expected letters, digits, '.', '_' and '-' (monkeyci artifacts ls BUILD lists them)", g.id)
	}
	if cmd.Flags().Changed("output") && g.out == "" {
		return errors.New("-o is empty: give a file, or - for stdout")
	}
	if cmd.Flags().Changed("extract") && g.dir == "" {
		return errors.New("-x is empty: give a directory")
	}
	if g.out != "" && g.out != "-" {
		if fi, err := os.Stat(g.out); err == nil && fi.IsDir() {
			return fmt.Errorf("-o %s is a directory: give a file name, or -x %s to unpack into it", g.out, g.out)
		}
	}
	return nil
}

// fetch writes the artifact to w, gzipped or not; its errors are said in
// one line.
func (g *artifactGet) fetch(ctx context.Context, c *admin.Client, w io.Writer, gz bool) (*fleet.ArtifactInfo, error) {
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(w)
		w = zw
	}
	info, err := admin.FetchArtifact(ctx, c, g.build, g.id, w)
	if err == nil && zw != nil {
		err = zw.Close()
	}
	if err != nil {
		return nil, adminFailed(c, err)
	}
	if info.GetSha256() == "" {
		fmt.Fprintf(g.stderr, "monkeyci: the coordinator keeps no sha256 of artifact %s: only its size was checked\n", g.id)
	}
	return info, nil
}

// writeFile writes the artifact to a file beside the destination and
// renames it there once checked: a failed download leaves nothing, and
// replaces nothing.
func (g *artifactGet) writeFile(ctx context.Context, c *admin.Client) error {
	dst := g.out
	if dst == "" {
		dst = g.id + ".tar.gz"
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*.part")
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		err = pe.Err // the temporary file's name says nothing to people
	}
	if err != nil {
		return failedError(fmt.Errorf("writing %s: %w", dst, err))
	}
	defer os.Remove(tmp.Name()) // after the rename: nothing there
	defer tmp.Close()
	if _, err := g.fetch(ctx, c, tmp, !strings.HasSuffix(dst, ".tar")); err != nil {
		return err
	}
	fi, err := tmp.Stat()
	if err == nil {
		err = tmp.Chmod(0o644) // CreateTemp's 0600, as a plain create would make it
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return failedError(fmt.Errorf("writing %s: %w", dst, err))
	}
	fmt.Fprintf(g.stderr, "wrote %s (%s)\n", dst, admin.Bytes(fi.Size()))
	return nil
}

// unpack downloads the artifact to a temporary file, checks the whole
// archive, and only then writes it under the directory.
func (g *artifactGet) unpack(ctx context.Context, c *admin.Client) error {
	tmp, err := os.CreateTemp("", "monkeyci-artifact-*.tar")
	if err != nil {
		return failedError(fmt.Errorf("a temporary file for the download: %w", err))
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	info, err := g.fetch(ctx, c, tmp, false)
	if err != nil {
		return err
	}
	o := admin.UnpackOptions{RootFile: g.id, Limit: info.GetSize(), Warn: g.stderr}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return failedError(fmt.Errorf("reading the download: %w", err))
	}
	if err := admin.CheckArchive(tmp, o); err != nil {
		return failedError(fmt.Errorf("artifact %s: %w; nothing was unpacked", g.id, err))
	}
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		return failedError(fmt.Errorf("-x: %w", err))
	}
	root, err := os.OpenRoot(g.dir)
	if err != nil {
		return failedError(fmt.Errorf("-x: %w", err))
	}
	defer root.Close()
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return failedError(fmt.Errorf("reading the download: %w", err))
	}
	done, err := admin.Unpack(root, tmp, o)
	if err != nil {
		return failedError(fmt.Errorf("artifact %s into %s: %w", g.id, g.dir, err))
	}
	fmt.Fprintf(g.stderr, "unpacked %s into %s (%s, %s)\n", g.id, g.dir, count(done.Files, "file"), admin.Bytes(done.Bytes))
	return nil
}

// count is n things: "1 file", "2 files".
func count(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

// completeArtifacts offers builds, then the ids of the build's artifacts.
func (f *adminFlags) completeArtifacts(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if len(args) != 1 {
		return f.completeBuilds(cmd, args, toComplete)
	}
	return f.complete(cmd, func(ctx context.Context, c *admin.Client) ([]cobra.Completion, error) {
		resp, err := c.ListArtifacts(ctx, &fleet.BuildRef{Id: args[0]})
		if err != nil {
			return nil, err
		}
		var out []cobra.Completion
		for _, a := range resp.GetArtifacts() {
			out = append(out, cobra.CompletionWithDesc(a.GetId(), admin.Bytes(a.GetSize())))
		}
		return out, nil
	})
}
