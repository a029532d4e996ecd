//go:build !linux

package source

// linkInPlace turns the empty folder dir into a link to target.
func linkInPlace(target, dir string) error { return replaceWithLink(target, dir) }
