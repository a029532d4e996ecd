package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ErrAmbiguous: a build id prefix matches more than one build.
var ErrAmbiguous = errors.New("ambiguous build id prefix")

// candidatesShown bounds the builds an ambiguous prefix's error names.
const candidatesShown = 5

// ResolveBuild returns the id of the build ref names: its whole id, or a
// prefix of exactly one build's id. No build is ErrNotFound; more than one,
// ErrAmbiguous naming some of them. Every admin call that takes a build id
// resolves it here.
func (c *Coordinator) ResolveBuild(ctx context.Context, ref string) (string, error) {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return "", notFound("no build named: give a build's id or the start of it")
	}
	// The whole id first: one read by the primary key, and an id that is
	// also the prefix of a longer one still names its own build.
	if _, err := c.cfg.Store.GetBuild(ctx, ref); err == nil {
		return ref, nil
	} else if !errors.Is(err, ErrNotFound) {
		return "", err
	}
	ids, err := c.cfg.Store.BuildIDs(ctx, ref, candidatesShown+1)
	if err != nil {
		return "", err
	}
	switch len(ids) {
	case 0:
		return "", notFound("no build " + ref + " (monkeyci builds ls lists them)")
	case 1:
		return ids[0], nil
	}
	more := ""
	if len(ids) > candidatesShown {
		ids, more = ids[:candidatesShown], ", ..."
	}
	return "", fmt.Errorf("%w: %s is the start of %s%s: give more of the id", ErrAmbiguous, ref, strings.Join(ids, ", "), more)
}

// resolveBuild is ResolveBuild for an admin call: its errors are statuses.
func (s *AdminServer) resolveBuild(ctx context.Context, ref string) (string, error) {
	id, err := s.c.ResolveBuild(ctx, ref)
	if errors.Is(err, ErrAmbiguous) {
		return "", status.Error(codes.InvalidArgument, err.Error())
	}
	if err != nil {
		return "", storeError(err)
	}
	return id, nil
}

// notFound is an ErrNotFound in words of its own.
type notFound string

func (e notFound) Error() string { return string(e) }
func (e notFound) Unwrap() error { return ErrNotFound }
