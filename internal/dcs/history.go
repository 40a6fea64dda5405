package dcs

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"time"

	"github.com/pgguard/pgguard/internal/ha"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Event is one entry of the cluster history. Action is a step kind or an
// Event kind of package ha; on the wire it is the plain string.
type Event struct {
	Time   time.Time `json:"time"`
	Node   string    `json:"node"`
	Action ha.Kind   `json:"action"`
	Target string    `json:"target,omitempty"`
	Reason string    `json:"reason,omitempty"`
	Result string    `json:"result,omitempty"`
	By     string    `json:"by,omitempty"`
	// Key is the event's id (its store key's last part; explain takes it):
	// filled when the history is read, never stored.
	Key string `json:"id,omitempty"`
}

// AppendHistory records one event. Keys sort by time, then node.
func (s *Store) AppendHistory(ctx context.Context, e Event) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	k := s.key("history", fmt.Sprintf("%020d-%s", e.Time.UnixNano(), e.Node))
	if _, err := s.cli.Put(ctx, k, string(data)); err != nil {
		return fmt.Errorf("record history: %w", err)
	}
	return nil
}

// History returns the events at or after since, oldest first.
func (s *Store) History(ctx context.Context, since time.Time) ([]Event, error) {
	from := s.key("history", fmt.Sprintf("%020d", since.UnixNano()))
	resp, err := s.cli.Get(ctx, from, clientv3.WithRange(clientv3.GetPrefixRangeEnd(s.key("history")+"/")))
	if err != nil {
		return nil, fmt.Errorf("read history: %w", err)
	}
	out := make([]Event, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var e Event
		if json.Unmarshal(kv.Value, &e) == nil {
			e.Key = path.Base(string(kv.Key)) // "00000001764819123456789-n1"
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}
