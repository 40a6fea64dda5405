package repo

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/pgguard/pgguard/internal/storage"
)

// Annotation is what people add to a backup: a free-text label (given at
// backup time or later) and a pin (a pinned backup is never pruned nor
// deleted until it is unpinned). It is kept beside the manifest, which is
// written once, in its own object sealed like the manifest; a backup
// without one has the zero Annotation.
type Annotation struct {
	Label    string    `json:"label,omitempty"`
	Pinned   bool      `json:"pinned,omitempty"`
	PinnedBy string    `json:"pinned_by,omitempty"`
	PinnedAt time.Time `json:"pinned_at,omitzero"`
}

// MaxLabel is the longest label, in bytes.
const MaxLabel = 200

// CheckLabel reports a label a person must change: too long, or holding
// control characters (it is printed in tables and logs).
func CheckLabel(s string) error {
	if len(s) > MaxLabel {
		return fmt.Errorf("label of %d bytes: at most %d", len(s), MaxLabel)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("label %q holds a control character (a newline, a tab): use plain text", s)
	}
	return nil
}

func annotationName(id string) string { return "annotations/" + id }

// Annotation reads backup id's annotation (zero when it has none).
func (r *Repository) Annotation(ctx context.Context, id string) (Annotation, error) {
	var a Annotation
	if err := checkBackupID(id); err != nil {
		return a, err
	}
	plain, err := r.loadObject(ctx, annotationName(id), annotationName(id))
	if storage.IsNotExist(err) {
		return a, nil
	}
	if err != nil {
		return a, fmt.Errorf("read the annotation of backup %s: %w", id, err)
	}
	if err := json.Unmarshal(plain, &a); err != nil {
		return a, fmt.Errorf("annotation of backup %s is damaged: %w", id, err)
	}
	return a, nil
}

// Annotations reads every backup's annotation, by backup id (backups
// without one are absent).
func (r *Repository) Annotations(ctx context.Context) (map[string]Annotation, error) {
	var ids []string
	err := r.be.List(ctx, "annotations/", func(fi storage.FileInfo) error {
		if id := strings.TrimPrefix(fi.Name, "annotations/"); checkBackupID(id) == nil {
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list annotations: %w", err)
	}
	out := make(map[string]Annotation, len(ids))
	for _, id := range ids {
		a, err := r.Annotation(ctx, id)
		if err != nil {
			return nil, err
		}
		out[id] = a
	}
	return out, nil
}

// SetAnnotation replaces backup id's annotation (the zero Annotation
// removes it). The backup must exist.
func (r *Repository) SetAnnotation(ctx context.Context, id string, a Annotation) error {
	if err := CheckLabel(a.Label); err != nil {
		return err
	}
	if _, err := r.LoadManifest(ctx, id); err != nil {
		return err
	}
	if a == (Annotation{}) {
		if err := r.be.Remove(ctx, annotationName(id)); err != nil && !storage.IsNotExist(err) {
			return fmt.Errorf("remove the annotation of backup %s: %w", id, err)
		}
		return nil
	}
	plain, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if err := r.saveObject(ctx, annotationName(id), annotationName(id), plain, compNone); err != nil {
		return fmt.Errorf("save the annotation of backup %s: %w", id, err)
	}
	return nil
}
