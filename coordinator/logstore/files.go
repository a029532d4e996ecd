package logstore

import (
	"container/list"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// stream is the in-memory state of one stream file. An entry lives in
// Store.streams while it is in use (refs > 0) or its file is open.
type stream struct {
	key  Key
	path string

	// Guarded by Store.mu.
	refs int           // operations and followers using the entry
	elem *list.Element // in Store.lru while f is open
	gone bool          // removed from Store.streams (Remove, Close)

	// mu serialises writes and file handling. f is touched by the holder
	// of mu while refs > 0, or under Store.mu when refs == 0.
	mu     sync.Mutex
	f      *os.File // opened for writing, nil when closed
	loaded bool     // size read from the file

	// state guards size, changed and removed, for followers.
	state   sync.Mutex
	size    int64
	changed chan struct{} // closed at the next change; nil if nobody waits
	removed bool
}

// acquire returns the key's entry, pinned until release.
func (s *Store) acquire(key Key) (*stream, error) {
	if err := key.Validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	st := s.streams[key]
	if st == nil {
		st = &stream{key: key, path: filepath.Join(s.attemptDir(key.Build, key.Attempt), key.fileName())}
		s.streams[key] = st
	}
	st.refs++
	if st.elem != nil {
		s.lru.MoveToFront(st.elem)
	}
	return st, nil
}

// release unpins an entry; an idle entry without an open file is dropped,
// and idle open files beyond maxOpen are closed.
func (s *Store) release(st *stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.refs--
	if st.refs > 0 {
		return
	}
	if st.gone && st.f != nil {
		s.closeFile(st)
	}
	if st.elem == nil && !st.gone {
		delete(s.streams, st.key)
		st.gone = true
	}
	s.evict()
}

// evict closes idle files, least recently used first, while more than
// maxOpen are open. Called with s.mu held.
func (s *Store) evict() {
	for e := s.lru.Back(); e != nil && s.lru.Len() > s.maxOpen; {
		st := e.Value.(*stream)
		e = e.Prev()
		if st.refs > 0 {
			continue
		}
		s.closeFile(st)
		if !st.gone {
			delete(s.streams, st.key)
			st.gone = true
		}
	}
}

// closeFile closes an idle entry's file. Called with s.mu held and
// st.refs == 0 (so nobody holds st.mu).
func (s *Store) closeFile(st *stream) {
	if st.f != nil {
		st.f.Close()
		st.f = nil
	}
	if st.elem != nil {
		s.lru.Remove(st.elem)
		st.elem = nil
	}
}

// load reads the stream's size from its file once. Called with st.mu held.
func (st *stream) load() error {
	if st.loaded {
		return nil
	}
	var size int64
	fi, err := os.Stat(st.path)
	switch {
	case err == nil:
		size = fi.Size()
	case errors.Is(err, fs.ErrNotExist):
	default:
		return err
	}
	st.state.Lock()
	st.size = size
	st.state.Unlock()
	st.loaded = true
	return nil
}

// open opens the stream's file for writing. Called with st.mu held.
func (s *Store) open(st *stream) error {
	if st.f != nil {
		return nil
	}
	f, err := os.OpenFile(st.path, os.O_RDWR|os.O_CREATE, 0o600)
	// The folders may be missing, or go while they are made: RemoveAttempt
	// removes an empty build folder.
	for try := 0; try < 3 && errors.Is(err, fs.ErrNotExist) && !st.isRemoved(); try++ {
		if err = os.MkdirAll(filepath.Dir(st.path), 0o700); err == nil {
			f, err = os.OpenFile(st.path, os.O_RDWR|os.O_CREATE, 0o600)
		}
	}
	if err != nil {
		if st.isRemoved() {
			// Remove moved the directory away meanwhile.
			return ErrRemoved
		}
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st.gone {
		// Removed meanwhile: the file went with its build (or the store
		// closed). Writing to it would be lost, so refuse.
		f.Close()
		if s.closed {
			return ErrClosed
		}
		return ErrRemoved
	}
	st.f = f
	st.elem = s.lru.PushFront(st)
	s.evict()
	return nil
}

// grow records a new size and wakes the followers.
func (st *stream) grow(size int64) {
	st.state.Lock()
	st.size = size
	if st.changed != nil {
		close(st.changed)
		st.changed = nil
	}
	st.state.Unlock()
}

func (st *stream) isRemoved() bool {
	st.state.Lock()
	defer st.state.Unlock()
	return st.removed
}

// snapshot returns the size and a channel closed at the next change (or
// removal).
func (st *stream) snapshot() (size int64, changed <-chan struct{}, removed bool) {
	st.state.Lock()
	defer st.state.Unlock()
	if st.removed {
		return st.size, nil, true
	}
	if st.changed == nil {
		st.changed = make(chan struct{})
	}
	return st.size, st.changed, false
}

func (st *stream) loadedSize() (int64, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.load(); err != nil {
		return 0, fmt.Errorf("log %s: %w", st.key, err)
	}
	return st.size, nil
}
