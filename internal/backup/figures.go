package backup

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/pgguard/pgguard/internal/repo"
)

// Figures are what a backup did, kept in its manifest header's Label as
// "key=value" words so that people can read them and Summaries can parse
// them back.
type Figures struct {
	BytesRead   int64 // read from the data directory
	BytesNew    int64 // stored in new packs by this backup (compressed, encrypted)
	Files       int64
	BadPages    int64
	PacksReused int64 // packs of an interrupted run indexed and reused
}

// Label encodes f for repo.Header.Label.
func (f Figures) Label() string {
	return fmt.Sprintf("bytes_read=%d bytes_new=%d files=%d bad_pages=%d packs_reused=%d",
		f.BytesRead, f.BytesNew, f.Files, f.BadPages, f.PacksReused)
}

// ParseFigures reads the words Label wrote; unknown words are ignored and
// missing ones are zero.
func ParseFigures(label string) Figures {
	var f Figures
	for _, w := range strings.Fields(label) {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "bytes_read":
			f.BytesRead = n
		case "bytes_new":
			f.BytesNew = n
		case "files":
			f.Files = n
		case "bad_pages":
			f.BadPages = n
		case "packs_reused":
			f.PacksReused = n
		}
	}
	return f
}

// Summary is one line of `pgguard backups`.
type Summary struct {
	ID         string    `json:"id"`
	Kind       repo.Kind `json:"kind"`
	Parent     string    `json:"parent,omitempty"`
	StartTime  time.Time `json:"start_time"`
	StopTime   time.Time `json:"stop_time"`
	StartLSN   string    `json:"start_lsn"`
	StopLSN    string    `json:"stop_lsn"`
	Timeline   uint32    `json:"timeline"`
	SystemID   uint64    `json:"system_id,string"`
	PGVersion  int       `json:"pg_version"`
	Size       int64     `json:"size"`        // bytes of the data directory
	BytesRead  int64     `json:"bytes_read"`  // read from disk by this backup
	StoredSize int64     `json:"stored_size"` // newly stored by this backup
	BadPages   int64     `json:"bad_pages"`
}

// Summarize describes a manifest's header.
func Summarize(h repo.Header) Summary {
	f := ParseFigures(h.Label)
	return Summary{
		ID: h.ID, Kind: h.Kind, Parent: h.Parent, StartTime: h.StartTime, StopTime: h.StopTime,
		StartLSN: h.StartLSN.String(), StopLSN: h.StopLSN.String(), Timeline: h.Timeline,
		SystemID: h.SystemID, PGVersion: h.PGVersion, Size: h.DatabaseSize,
		BytesRead: f.BytesRead, StoredSize: f.BytesNew, BadPages: f.BadPages,
	}
}
