package coordinator

import "sync"

// endWatchers hand out, per watched build, a channel closed when the
// build ends.
type endWatchers struct {
	mu    sync.Mutex
	chans map[string]chan struct{}
}

// watch returns the channel closed at the build's end.
func (w *endWatchers) watch(id string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, ok := w.chans[id]
	if !ok {
		if w.chans == nil {
			w.chans = map[string]chan struct{}{}
		}
		ch = make(chan struct{})
		w.chans[id] = ch
	}
	return ch
}

// ended closes the build's channel, if it is watched.
func (w *endWatchers) ended(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch, ok := w.chans[id]; ok {
		close(ch)
		delete(w.chans, id)
	}
}
