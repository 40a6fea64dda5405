package repo

import (
	"encoding/json"
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
)

// Manifests store a backup's start and stop LSNs as JSON numbers, as
// every manifest written so far has them, while an lsn.LSN on its own
// encodes as text ("16/B374D848", the form of the cluster store's
// documents). Header and Manifest therefore encode through headerWire:
// Header's fields in Header's order, with the LSNs as numbers, so that a
// manifest's bytes are what older versions wrote and read.
// TestHeaderWireMatchesHeader keeps the two structs in step.
type headerWire struct {
	ID           string         `json:"id"`
	Kind         Kind           `json:"kind"`
	Parent       string         `json:"parent,omitempty"`
	StartTime    time.Time      `json:"start_time"`
	StopTime     time.Time      `json:"stop_time"`
	StartLSN     uint64         `json:"start_lsn"`
	StopLSN      uint64         `json:"stop_lsn"`
	Timeline     uint32         `json:"timeline"`
	SystemID     uint64         `json:"system_id,string"`
	PGVersion    int            `json:"pg_version"`
	DatabaseSize int64          `json:"database_size"`
	Label        string         `json:"label,omitempty"`
	Logical      *LogicalTarget `json:"logical,omitempty"`
}

func (h Header) wire() headerWire {
	return headerWire{
		ID: h.ID, Kind: h.Kind, Parent: h.Parent, StartTime: h.StartTime, StopTime: h.StopTime,
		StartLSN: uint64(h.StartLSN), StopLSN: uint64(h.StopLSN), Timeline: h.Timeline, SystemID: h.SystemID,
		PGVersion: h.PGVersion, DatabaseSize: h.DatabaseSize, Label: h.Label, Logical: h.Logical,
	}
}

func (w headerWire) header() Header {
	return Header{
		ID: w.ID, Kind: w.Kind, Parent: w.Parent, StartTime: w.StartTime, StopTime: w.StopTime,
		StartLSN: lsn.LSN(w.StartLSN), StopLSN: lsn.LSN(w.StopLSN), Timeline: w.Timeline, SystemID: w.SystemID,
		PGVersion: w.PGVersion, DatabaseSize: w.DatabaseSize, Label: w.Label, Logical: w.Logical,
	}
}

// manifestWire is Manifest as stored.
type manifestWire struct {
	headerWire
	Files []FileEntry `json:"files"`
}

func (m *Manifest) wire() manifestWire { return manifestWire{m.Header.wire(), m.Files} }

func (w *manifestWire) manifest() Manifest { return Manifest{Header: w.header(), Files: w.Files} }

// MarshalJSON encodes h as manifests store it.
func (h Header) MarshalJSON() ([]byte, error) { return json.Marshal(h.wire()) }

// UnmarshalJSON decodes a header as manifests store it.
func (h *Header) UnmarshalJSON(b []byte) error {
	w := h.wire()
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*h = w.header()
	return nil
}

// MarshalJSON encodes m as it is stored. (Without it, Header's method
// would encode only the header.)
func (m Manifest) MarshalJSON() ([]byte, error) { return json.Marshal(m.wire()) }

// UnmarshalJSON decodes a stored manifest.
func (m *Manifest) UnmarshalJSON(b []byte) error {
	w := m.wire()
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*m = w.manifest()
	return nil
}
