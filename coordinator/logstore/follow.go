package logstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// followBuf is how much Follow reads at a time.
const followBuf = 256 << 10

// Follow copies the key's stream to w from offset from on, then the bytes
// written after, as they are written (it waits for writes, without
// polling). It returns nil once ended is closed (the build ended, no more
// writes come) and every stored byte has been copied; with ctx's error when
// ctx ends; with ErrRemoved if the build's logs are removed meanwhile, and
// with ErrClosed if the store closes. A nil ended follows until ctx ends.
// w should not block forever: Follow holds no lock while writing to it.
func (s *Store) Follow(ctx context.Context, key Key, from int64, w io.Writer, ended <-chan struct{}) error {
	if from < 0 {
		return fmt.Errorf("%w: negative offset %d", ErrInvalid, from)
	}
	st, err := s.acquire(key)
	if err != nil {
		return err
	}
	defer s.release(st)
	if _, err := st.loadedSize(); err != nil {
		return err
	}
	var (
		f   *os.File
		buf []byte
	)
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Look at ended before the size: if the build had ended by then,
		// the size read after is final.
		isEnded := false
		select {
		case <-ended:
			isEnded = true
		default:
		}
		size, changed, removed := st.snapshot()
		if removed {
			return fmt.Errorf("log %s: %w", key, ErrRemoved)
		}
		if from < size {
			if f == nil {
				if f, err = os.Open(st.path); err != nil {
					if st.isRemoved() {
						err = ErrRemoved
					}
					return fmt.Errorf("log %s: %w", key, err)
				}
				buf = make([]byte, followBuf)
			}
			n, err := f.ReadAt(buf[:min(int64(len(buf)), size-from)], from)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return werr
				}
				from += int64(n)
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("log %s: %w", key, err)
			}
			if n == 0 {
				// The file is shorter than recorded: removed under us.
				return fmt.Errorf("log %s: %w", key, ErrRemoved)
			}
			continue
		}
		if isEnded {
			return nil
		}
		select {
		case <-changed:
		case <-ended:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ErrClosed
		}
	}
}
