package agent

import (
	"bytes"
	"encoding/json"
	"sync"
	"time"

	"github.com/pgguard/pgguard/internal/jobs"
)

// progressWriter takes a job command's stderr: its JSON progress lines
// (one per event when stderr is not a terminal) become the run's live
// progress; every other line goes to the run's log.
type progressWriter struct {
	mu      sync.Mutex
	log     *bytes.Buffer
	partial []byte
	latest  *jobs.Progress
	fresh   bool
}

func (w *progressWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := w.partial[:i+1]
		if !w.progressLine(line) {
			w.log.Write(line)
		}
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

// progressLine records line if it is a progress event and says so.
func (w *progressWriter) progressLine(line []byte) bool {
	var ev struct {
		Event string `json:"event"`
		Phase string `json:"phase"`
		Done  int64  `json:"done_bytes"`
		Total int64  `json:"total_bytes"`
		Rate  int64  `json:"bytes_per_second"`
		ETA   int64  `json:"eta_seconds"`
	}
	if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &ev) != nil {
		return false
	}
	if ev.Event != "progress" && ev.Event != "start" {
		return false
	}
	w.latest = &jobs.Progress{Phase: ev.Phase, DoneBytes: ev.Done, TotalBytes: ev.Total, BytesPerSecond: ev.Rate, ETASeconds: ev.ETA, At: time.Now().UTC()}
	w.fresh = true
	return true
}

// take returns the latest progress if it changed since the last call.
func (w *progressWriter) take() (*jobs.Progress, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.fresh {
		return nil, false
	}
	w.fresh = false
	p := *w.latest
	return &p, true
}

// flush writes an unterminated last line to the log.
func (w *progressWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.log.Write(w.partial)
		w.partial = nil
	}
}
