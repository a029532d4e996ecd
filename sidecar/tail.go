package sidecar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/monkeyci/monkeyci/events"
)

// Sink receives what a job's wrapper wrote, in order, from one goroutine.
type Sink interface {
	// Event is called for each wrapper event. Events read without a :time
	// get the time they were read. A line that is not a readable event comes
	// as an Event with an empty Type and a Message saying why.
	Event(e events.Event)
	// Output is called with a command's bytes ("out" or "err"), in file
	// order, ending at a line end when possible. data is the tailer's read
	// buffer, valid only during the call: a sink that keeps it copies it.
	// All of a command's output read so far comes before its command/end.
	Output(command, stream string, data []byte)
}

// sink is the tailer's own view of a sink: with file offsets (for Stream),
// and an error that stops the tailer.
type sink interface {
	event(e events.Event, off int64) error
	output(command, stream string, off int64, data []byte) error
}

type plain struct{ Sink }

func (p plain) event(e events.Event, _ int64) error { p.Event(e); return nil }
func (p plain) output(c, s string, _ int64, d []byte) error {
	p.Output(c, s, d)
	return nil
}

// Tail follows the event log and log files in dir (a job directory made by
// Write) and passes them to sink. It waits on file notifications, never
// polls. Start it before the job's container, so that it holds the
// directories before the job could swap them (it reads everything that is
// already there either way). When exited is closed it reads every file to
// its end, whether or not it was notified about it, and returns nil. It
// returns ctx's error if ctx ends first, or the first read error.
func Tail(ctx context.Context, dir string, sink Sink, exited <-chan struct{}) error {
	t, err := newTailer(dir, plain{sink})
	if err != nil {
		return err
	}
	defer t.close()
	return t.run(ctx, exited, false)
}

const (
	chunk   = 256 << 10 // bytes per read
	maxLine = 64 << 10  // longest event line; longer ones are reported and skipped
)

// readGap is the least time between two reads of a log file on its
// notifications. A job that prints fast writes a few KB at a time, each
// write a notification: read on every one, 256 MB took some 13,000 reads,
// outputs and messages. Output after a quiet spell is read at once; a file
// in full flow is read every readGap, at most that late. The end of a
// command, and of the job, reads everything at once.
const readGap = 2 * time.Millisecond

type tailer struct {
	dir, logsDir string
	sink         sink
	w            *fsnotify.Watcher
	d, logs      *os.File // held so that a job cannot swap them under us

	ev       *os.File
	evBuf    []byte // read, not yet consumed: at most a partial line
	evOff    int64  // offset of evBuf[0] in the event file
	skipping bool   // inside an over-long event line

	started map[string]bool // commands whose start (or end) was read
	files   map[string]*logFile
	bad     map[string]bool // names refused by openIn, reported once
	done    bool            // a done? event was read

	reads atomic.Int64 // read calls, for the no-spin test
	// readGap, a field so that a test can make it long.
	readGap time.Duration

	// gap fires when the log files held back by readGap (dirty) may be
	// read; it is set while dirty is not empty.
	gap   *time.Timer
	dirty []*logFile
}

type logFile struct {
	name, command, stream string
	f                     *os.File
	off                   int64  // bytes read
	held                  []byte // read but not yet passed on: a partial line
	buf                   []byte // the read buffer, reused (Sink.Output)
	lastRead              time.Time
	dirty                 bool // notified since lastRead, held back by readGap
}

func newTailer(dir string, s sink) (*tailer, error) {
	dir = filepath.Clean(dir)
	t := &tailer{dir: dir, logsDir: filepath.Join(dir, LogsDir), sink: s, readGap: readGap,
		started: map[string]bool{}, files: map[string]*logFile{}, bad: map[string]bool{}}
	var err error
	if t.d, err = os.Open(dir); err != nil {
		return nil, err
	}
	if t.w, err = fsnotify.NewBufferedWatcher(256); err != nil {
		t.d.Close()
		return nil, err
	}
	// Watch before the first read, so nothing written in between is missed.
	if err := t.w.Add(dir); err != nil {
		t.close()
		return nil, err
	}
	t.openLogs()
	return t, nil
}

// openLogs opens and watches the log dir once it exists.
func (t *tailer) openLogs() {
	if t.logs != nil {
		return
	}
	f, err := openIn(t.d, LogsDir, true)
	if err != nil {
		return
	}
	if err := t.w.Add(t.logsDir); err != nil {
		f.Close()
		return
	}
	t.logs = f
}

func (t *tailer) close() {
	t.w.Close()
	if t.gap != nil {
		t.gap.Stop()
	}
	for _, f := range []*os.File{t.d, t.logs, t.ev} {
		if f != nil {
			f.Close()
		}
	}
	for _, lf := range t.files {
		if lf.f != nil {
			lf.f.Close()
		}
	}
}

func (t *tailer) run(ctx context.Context, exited <-chan struct{}, stopOnDone bool) error {
	if err := t.rescan(); err != nil {
		return err
	}
	evc, errc := t.w.Events, t.w.Errors
	for !(stopOnDone && t.done) {
		var err error
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return t.drain()
		case e, ok := <-evc:
			if !ok { // watcher gone: nothing more to wait on but exit
				evc = nil
				continue
			}
			err = t.notified(e)
		case <-t.gapC():
			err = t.readDirty()
		case _, ok := <-errc:
			if !ok {
				errc = nil
				continue
			}
			err = t.rescan() // e.g. a queue overflow: notifications were lost
		}
		if err != nil {
			return err
		}
	}
	return t.drain()
}

func (t *tailer) notified(e fsnotify.Event) error {
	if !e.Has(fsnotify.Create) && !e.Has(fsnotify.Write) {
		return nil
	}
	dir, name := filepath.Split(e.Name)
	switch filepath.Clean(dir) {
	case t.dir:
		switch name {
		case EventsFile:
			return t.readEvents(false)
		case LogsDir:
			if t.logs == nil {
				t.openLogs()
				return t.rescan()
			}
		}
	case t.logsDir:
		cmd, stream, ok := parseLogName(name)
		if !ok {
			return nil
		}
		if !t.started[cmd] {
			// Its command/start may be waiting in the event file.
			if err := t.readEvents(false); err != nil || !t.started[cmd] {
				return err
			}
		}
		lf := t.file(cmd, stream)
		if wait := t.readGap - time.Since(lf.lastRead); wait > 0 {
			if !lf.dirty {
				lf.dirty = true
				t.hold(lf, wait)
			}
			return nil
		}
		// Files held back were written before this one was: read them
		// first, so that stdout and stderr keep the order they came in.
		if err := t.readDirty(); err != nil {
			return err
		}
		return t.readLog(lf, false)
	}
	return nil
}

// gapC is the channel of the readGap timer while it is set, else nil.
func (t *tailer) gapC() <-chan time.Time {
	if len(t.dirty) == 0 {
		return nil
	}
	return t.gap.C
}

// hold keeps lf to be read when the readGap timer fires, setting it for d
// unless it is set: later notifications must not push a held-back read
// further out.
func (t *tailer) hold(lf *logFile, d time.Duration) {
	if len(t.dirty) == 0 {
		if t.gap == nil {
			t.gap = time.NewTimer(d)
		} else {
			t.gap.Reset(d)
		}
	}
	t.dirty = append(t.dirty, lf)
}

// readDirty reads the log files held back by readGap (those read since
// by other means are no longer dirty).
func (t *tailer) readDirty() error {
	files := t.dirty
	t.dirty = nil
	for _, lf := range files {
		if lf.dirty {
			if err := t.readLog(lf, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// rescan reads everything that may have grown: after start and lost notifications.
func (t *tailer) rescan() error {
	t.openLogs()
	if err := t.readEvents(false); err != nil {
		return err
	}
	for _, lf := range t.sortedFiles() {
		if err := t.readLog(lf, false); err != nil {
			return err
		}
	}
	return nil
}

// drain reads the event file and every log file, known or not, to the end.
func (t *tailer) drain() error {
	t.openLogs()
	if err := t.readEvents(true); err != nil {
		return err
	}
	if t.logs != nil {
		names, _ := t.logs.ReadDir(-1)
		for _, n := range names {
			if cmd, stream, ok := parseLogName(n.Name()); ok {
				t.file(cmd, stream)
			}
		}
	}
	for _, lf := range t.sortedFiles() {
		if err := t.readLog(lf, true); err != nil {
			return err
		}
	}
	return nil
}

// readEvents consumes whole lines of the event file; with final, a last
// line without its newline too (the writer is gone).
func (t *tailer) readEvents(final bool) error {
	if t.ev == nil && !t.open(EventsFile, t.d, &t.ev) {
		return nil
	}
	read := t.evOff + int64(len(t.evBuf))
	err := t.readNow(t.ev, read, func(want int) (int, error) {
		t.evBuf = grow(t.evBuf, want)
		n, err := t.ev.Read(t.evBuf[len(t.evBuf) : len(t.evBuf)+want])
		t.evBuf = t.evBuf[:len(t.evBuf)+n]
		if err != nil {
			return n, err
		}
		return n, t.lines()
	})
	if err != nil || !final || len(t.evBuf) == 0 {
		return err
	}
	line, off, skip := t.evBuf, t.evOff, t.skipping
	t.evBuf, t.evOff, t.skipping = nil, t.evOff+int64(len(line)), false
	if skip {
		return nil
	}
	return t.line(line, off)
}

// readNow reads f from offset read up to its size at the call, in chunks,
// through rd(want). Stopping there (not at EOF) means a writer that never
// stops cannot hold the tailer; what it writes later brings a notification.
func (t *tailer) readNow(f *os.File, read int64, rd func(want int) (int, error)) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	for read < st.Size() {
		t.reads.Add(1)
		n, err := rd(int(min(chunk, st.Size()-read)))
		read += int64(n)
		if err != nil && err != io.EOF {
			return err
		}
		if n == 0 { // truncated under us
			return nil
		}
	}
	return nil
}

// lines consumes the complete lines in evBuf.
func (t *tailer) lines() error {
	start := 0
	for {
		i := bytes.IndexByte(t.evBuf[start:], '\n')
		if i < 0 {
			break
		}
		line, off := t.evBuf[start:start+i], t.evOff
		t.evOff += int64(i + 1)
		start += i + 1
		var err error
		switch {
		case t.skipping:
			t.skipping = false
		case len(line) > maxLine:
			err = t.tooLong(off)
		default:
			err = t.line(line, off)
		}
		if err != nil {
			return err
		}
	}
	t.evBuf = t.evBuf[:copy(t.evBuf, t.evBuf[start:])]
	if len(t.evBuf) > maxLine && !t.skipping {
		t.skipping = true
		if err := t.tooLong(t.evOff); err != nil {
			return err
		}
	}
	if t.skipping { // drop what we have, keep looking for its end
		t.evOff += int64(len(t.evBuf))
		t.evBuf = t.evBuf[:0]
	}
	return nil
}

func (t *tailer) tooLong(off int64) error {
	return t.malformed(off, fmt.Errorf("event line longer than %d bytes", maxLine))
}

func (t *tailer) malformed(off int64, err error) error {
	return t.sink.event(events.Event{Time: time.Now(), Message: fmt.Sprintf("%s at offset %d: %v", EventsFile, off, err)}, off)
}

// line handles one event line, keeping output before the events that follow it.
func (t *tailer) line(line []byte, off int64) error {
	if len(bytes.TrimSpace(line)) == 0 {
		return nil
	}
	e, err := events.DecodeEDN(line)
	if err != nil {
		return t.malformed(off, err)
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	switch e.Type {
	case events.CommandStart:
		t.started[e.Command] = true
		if err := t.sink.event(e, off); err != nil {
			return err
		}
		return t.readCommand(e.Command, false)
	case events.CommandEnd:
		t.started[e.Command] = true
		if err := t.readCommand(e.Command, true); err != nil {
			return err
		}
	case events.ContainerScriptEnd:
		for _, lf := range t.sortedFiles() {
			if err := t.readLog(lf, true); err != nil {
				return err
			}
		}
	}
	if e.Done {
		t.done = true
	}
	return t.sink.event(e, off)
}

func (t *tailer) readCommand(cmd string, flush bool) error {
	if !isIndex(cmd) {
		return nil // not a wrapper index: no files of ours
	}
	if err := t.readDirty(); err != nil { // held back, so written first
		return err
	}
	for _, stream := range []string{"out", "err"} {
		lf := t.file(cmd, stream)
		if err := t.readLog(lf, flush); err != nil {
			return err
		}
		if flush { // the command has ended: its files grow no more
			lf.buf = nil
		}
	}
	return nil
}

func (t *tailer) file(cmd, stream string) *logFile {
	name := LogFile(cmd, stream)
	lf := t.files[name]
	if lf == nil {
		lf = &logFile{name: name, command: cmd, stream: stream}
		t.files[name] = lf
	}
	return lf
}

// readLog passes on what lf has grown by, up to its last newline; with
// flush, all of it.
func (t *tailer) readLog(lf *logFile, flush bool) error {
	if lf.f == nil && (t.logs == nil || !t.open(lf.name, t.logs, &lf.f)) {
		return nil
	}
	// The gap runs from a read that found bytes: a file made empty (the
	// wrapper makes both of a command's) is read at its first write.
	lf.dirty = false
	if st, err := lf.f.Stat(); err == nil && st.Size() > lf.off {
		lf.lastRead = time.Now()
	}
	err := t.readNow(lf.f, lf.off, func(want int) (int, error) {
		// One buffer per file, grown to the largest read: a job printing
		// 256 MB no longer allocates (and the GC no longer sweeps) as much.
		need := len(lf.held) + want
		if cap(lf.buf) < need {
			lf.buf = make([]byte, need)
		}
		b := lf.buf[:copy(lf.buf, lf.held)]
		n, err := lf.f.Read(b[len(b):need])
		b = b[:len(b)+n]
		lf.off += int64(n)
		cut := bytes.LastIndexByte(b, '\n') + 1
		if cut == 0 && len(b) >= chunk { // no line end in sight: pass it on anyway
			cut = len(b)
		}
		lf.held = append(lf.held[:0], b[cut:]...)
		if cut > 0 {
			if err := t.sink.output(lf.command, lf.stream, lf.off-int64(len(b)), b[:cut]); err != nil {
				return n, err
			}
		}
		return n, err
	})
	if err != nil || !flush || len(lf.held) == 0 {
		return err
	}
	b := lf.held
	lf.held = nil
	return t.sink.output(lf.command, lf.stream, lf.off-int64(len(b)), b)
}

// open opens name in dir into *f. A missing file is not there yet; a file
// refused by openIn (a symlink, a device) is reported once and then ignored.
func (t *tailer) open(name string, dir *os.File, f **os.File) bool {
	key := filepath.Join(filepath.Base(dir.Name()), name)
	if t.bad[key] {
		return false
	}
	h, err := openIn(dir, name, false)
	if err == nil {
		*f = h
		return true
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.bad[key] = true
		t.sink.event(events.Event{Time: time.Now(), Message: "not read: " + err.Error()}, -1)
	}
	return false
}

// sortedFiles lists the known log files by command number, out before err.
func (t *tailer) sortedFiles() []*logFile {
	fs := make([]*logFile, 0, len(t.files))
	for _, lf := range t.files {
		fs = append(fs, lf)
	}
	sort.Slice(fs, func(i, j int) bool {
		a, _ := strconv.Atoi(fs[i].command)
		b, _ := strconv.Atoi(fs[j].command)
		if a != b {
			return a < b
		}
		return fs[i].stream > fs[j].stream // "out" > "err"
	})
	return fs
}

// parseLogName splits "N_out.log" / "N_err.log".
func parseLogName(name string) (cmd, stream string, ok bool) {
	base, ok := strings.CutSuffix(name, ".log")
	if !ok {
		return "", "", false
	}
	cmd, stream, ok = strings.Cut(base, "_")
	if !ok || (stream != "out" && stream != "err") {
		return "", "", false
	}
	if !isIndex(cmd) {
		return "", "", false
	}
	return cmd, stream, true
}

// isIndex says whether s is a wrapper line index: digits, no leading zero.
func isIndex(s string) bool {
	_, err := strconv.ParseUint(s, 10, 31)
	return err == nil && (s == "0" || s[0] != '0')
}

// grow makes room for n more bytes after len(b).
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	nb := make([]byte, len(b), len(b)+n)
	copy(nb, b)
	return nb
}
