package engine_test

import (
	"context"
	"io"
	"slices"
	"sync"

	"github.com/monkeyci/monkeyci/agent/engine"
)

// fakeEngine keeps images and labelled things in maps. It implements only
// what the package's helpers call; the rest panics through the nil Runtime.
type fakeEngine struct {
	engine.Runtime

	mu         sync.Mutex
	images     map[string][]byte   // ref: the imported rootfs tar
	entrypoint map[string][]string // ref: its entrypoint
	containers map[string]map[string]string
	volumes    map[string]map[string]string
	networks   map[string]map[string]string
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{
		images:     map[string][]byte{},
		entrypoint: map[string][]string{},
		containers: map[string]map[string]string{},
		volumes:    map[string]map[string]string{},
		networks:   map[string]map[string]string{},
	}
}

func (f *fakeEngine) HasImage(_ context.Context, ref string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.images[ref]
	return ok, nil
}

func (f *fakeEngine) ImportImage(_ context.Context, ref string, rootfs io.Reader, entrypoint []string) error {
	b, err := io.ReadAll(rootfs)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.images[ref], f.entrypoint[ref] = b, entrypoint
	return nil
}

func (f *fakeEngine) ListContainers(_ context.Context, labels map[string]string) ([]string, error) {
	return f.list(f.containers, labels), nil
}

func (f *fakeEngine) ListVolumes(_ context.Context, labels map[string]string) ([]string, error) {
	return f.list(f.volumes, labels), nil
}

func (f *fakeEngine) ListNetworks(_ context.Context, labels map[string]string) ([]string, error) {
	return f.list(f.networks, labels), nil
}

func (f *fakeEngine) Remove(_ context.Context, id string) error {
	return f.remove(f.containers, id)
}

func (f *fakeEngine) RemoveVolume(_ context.Context, name string) error {
	return f.remove(f.volumes, name)
}

func (f *fakeEngine) RemoveNetwork(_ context.Context, name string) error {
	return f.remove(f.networks, name)
}

// list returns, sorted, the names in m that carry all the labels want.
func (f *fakeEngine) list(m map[string]map[string]string, want map[string]string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for name, labels := range m {
		if carriesAll(labels, want) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func carriesAll(labels, want map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

func (f *fakeEngine) remove(m map[string]map[string]string, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(m, name)
	return nil
}
