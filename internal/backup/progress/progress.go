// Package progress reports the progress of a long backup or restore step: a
// bar with bytes, rate and ETA on a terminal, one JSON object per line
// otherwise (for logs and job runners). It only writes to the writer it is
// given; it never decides anything and never sees a secret.
package progress

import (
	"encoding/json"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/sys/unix"
)

// Reporter receives the progress of one step. Its methods are safe for
// concurrent use; Add is called from many goroutines.
type Reporter interface {
	// Start begins a phase of total bytes (0 when unknown).
	Start(phase string, total int64)
	// Add counts n more bytes done.
	Add(n int64)
	// Event reports a notable fact (e.g. "incremental became full").
	Event(name string, fields map[string]any)
	// Finish ends the current phase.
	Finish()
}

// Discard is a Reporter that reports nothing.
type Discard struct{}

func (Discard) Start(string, int64)          {}
func (Discard) Add(int64)                    {}
func (Discard) Event(string, map[string]any) {}
func (Discard) Finish()                      {}

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// ForStderr returns a bar Reporter when stderr is a terminal and a JSON
// lines Reporter on stderr otherwise.
func ForStderr() Reporter {
	if IsTerminal(os.Stderr) {
		return NewBar(os.Stderr)
	}
	return NewJSON(os.Stderr, 2*time.Second, time.Now)
}

// JSON writes one JSON object per line: {"time","event","phase",...}.
// Progress lines are written at most once per interval.
type JSON struct {
	w        io.Writer
	interval time.Duration
	now      func() time.Time

	done atomic.Int64

	mu    sync.Mutex
	phase string
	total int64
	start time.Time
	last  time.Time
}

// NewJSON returns a JSON lines reporter writing to w.
func NewJSON(w io.Writer, interval time.Duration, now func() time.Time) *JSON {
	return &JSON{w: w, interval: interval, now: now}
}

func (j *JSON) emit(event string, fields map[string]any) {
	rec := map[string]any{"time": j.now().UTC().Format(time.RFC3339Nano), "event": event}
	if j.phase != "" {
		rec["phase"] = j.phase
	}
	for k, v := range fields {
		rec[k] = v
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return
	}
	j.w.Write(append(b, '\n'))
}

func (j *JSON) Start(phase string, total int64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.phase, j.total, j.start, j.last = phase, total, j.now(), j.now()
	j.done.Store(0)
	j.emit("start", map[string]any{"total_bytes": total})
}

func (j *JSON) Add(n int64) {
	done := j.done.Add(n)
	now := j.now()
	j.mu.Lock()
	defer j.mu.Unlock()
	if now.Sub(j.last) < j.interval {
		return
	}
	j.last = now
	j.emit("progress", j.figures(done, now))
}

func (j *JSON) figures(done int64, now time.Time) map[string]any {
	f := map[string]any{"done_bytes": done, "total_bytes": j.total}
	if el := now.Sub(j.start).Seconds(); el > 0 {
		rate := float64(done) / el
		f["bytes_per_second"] = int64(rate)
		if rate > 0 && j.total > done {
			f["eta_seconds"] = int64(float64(j.total-done) / rate)
		}
	}
	return f
}

func (j *JSON) Event(name string, fields map[string]any) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.emit(name, fields)
}

func (j *JSON) Finish() {
	j.mu.Lock()
	defer j.mu.Unlock()
	f := j.figures(j.done.Load(), j.now())
	f["seconds"] = j.now().Sub(j.start).Seconds()
	j.emit("finish", f)
	j.phase = ""
}

// Bar draws an mpb progress bar with bytes, average rate and ETA.
type Bar struct {
	w  io.Writer
	mu sync.Mutex
	p  *mpb.Progress
	b  *mpb.Bar
}

// NewBar returns a terminal reporter drawing on w.
func NewBar(w io.Writer) *Bar { return &Bar{w: w} }

func (b *Bar) Start(phase string, total int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.p = mpb.New(mpb.WithOutput(b.w), mpb.WithWidth(40), mpb.WithRefreshRate(200*time.Millisecond), mpb.WithAutoRefresh())
	b.b = b.p.AddBar(total,
		mpb.PrependDecorators(decor.Name(phase+" "), decor.Counters(decor.SizeB1024(0), "% .1f / % .1f")),
		mpb.AppendDecorators(decor.AverageSpeed(decor.SizeB1024(0), " % .1f"), decor.Name("  ETA "),
			decor.AverageETA(decor.ET_STYLE_GO)))
}

func (b *Bar) Add(n int64) {
	b.mu.Lock()
	bar := b.b
	b.mu.Unlock()
	if bar != nil {
		bar.IncrInt64(n)
	}
}

func (b *Bar) Event(name string, fields map[string]any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	line, _ := json.Marshal(fields)
	msg := name + " " + string(line) + "\n"
	if b.p != nil {
		b.p.Write([]byte(msg))
		return
	}
	io.WriteString(b.w, msg)
}

func (b *Bar) Finish() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.b == nil {
		return
	}
	b.b.SetTotal(-1, true) // complete at the current count
	b.p.Wait()
	b.b, b.p = nil, nil
}
