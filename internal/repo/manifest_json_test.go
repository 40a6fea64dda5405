package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/pgguard/pgguard/internal/lsn"
)

// goldenManifest is a manifest as pgguard wrote it before LSNs had a
// package of their own (LSNs as JSON numbers).
const goldenManifest = `{"id":"20260101T000000.000Z-00000001","kind":"incr","parent":"p","start_time":"2026-01-02T03:04:05Z","stop_time":"2026-01-02T03:05:05Z","start_lsn":97500059720,"stop_lsn":18446744073709551615,"timeline":3,"system_id":"7000000000000000001","pg_version":170002,"database_size":12345,"label":"nightly","files":[{"path":"PG_VERSION","mode":384,"size":3,"mtime":"0001-01-01T00:00:00Z","checksum":"","blocks":""}]}`

func goldenManifestValue() Manifest {
	return Manifest{
		Header: Header{ID: "20260101T000000.000Z-00000001", Kind: KindIncr, Parent: "p",
			StartTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), StopTime: time.Date(2026, 1, 2, 3, 5, 5, 0, time.UTC),
			StartLSN: 0x16B374D848, StopLSN: 0xFFFFFFFFFFFFFFFF, Timeline: 3, SystemID: 7000000000000000001,
			PGVersion: 170002, DatabaseSize: 12345, Label: "nightly"},
		Files: []FileEntry{{Path: "PG_VERSION", Mode: 0o600, Size: 3}},
	}
}

func TestManifestEncodingIsUnchanged(t *testing.T) {
	m := goldenManifestValue()
	for name, v := range map[string]any{"Manifest": m, "*Manifest": &m, "wire": m.wire()} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != goldenManifest {
			t.Errorf("%s encodes as\n%s\nwant the bytes older versions wrote\n%s", name, b, goldenManifest)
		}
	}
	var got Manifest
	if err := json.Unmarshal([]byte(goldenManifest), &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("decoded %+v, want %+v", got, m)
	}
	var w manifestWire
	if err := json.Unmarshal([]byte(goldenManifest), &w); err != nil || !reflect.DeepEqual(w.manifest(), m) {
		t.Fatalf("decoded through the wire struct: %+v, %v; want %+v", w.manifest(), err, m)
	}
}

func TestHeaderEncodesAsInManifests(t *testing.T) {
	h := Header{ID: "x", StartLSN: 0x100000010, StopLSN: 5}
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"x","kind":"","start_time":"0001-01-01T00:00:00Z","stop_time":"0001-01-01T00:00:00Z","start_lsn":4294967312,"stop_lsn":5,"timeline":0,"system_id":"0","pg_version":0,"database_size":0}`
	if string(b) != want {
		t.Fatalf("header encodes as\n%s\nwant\n%s", b, want)
	}
	// Decoding merges into what is there, like a plain struct.
	back := Header{Label: "kept"}
	if err := json.Unmarshal(b, &back); err != nil || back.StartLSN != h.StartLSN || back.StopLSN != h.StopLSN || back.Label != "kept" {
		t.Fatalf("decoded %+v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"start_lsn":"0/5"}`), &back); err == nil {
		t.Fatal("a text LSN decoded in a manifest header; manifests have numbers")
	}
}

// A field added to Header and forgotten in headerWire would silently be
// dropped from every manifest.
func TestHeaderWireMatchesHeader(t *testing.T) {
	ht, wt := reflect.TypeFor[Header](), reflect.TypeFor[headerWire]()
	if ht.NumField() != wt.NumField() {
		t.Fatalf("Header has %d fields, headerWire %d: keep them in step", ht.NumField(), wt.NumField())
	}
	for i := range ht.NumField() {
		hf, wf := ht.Field(i), wt.Field(i)
		want := hf.Type
		if want == reflect.TypeFor[lsn.LSN]() {
			want = reflect.TypeFor[uint64]()
		}
		if hf.Name != wf.Name || hf.Tag.Get("json") != wf.Tag.Get("json") || wf.Type != want {
			t.Errorf("field %d: Header has %s %s %q, headerWire %s %s %q", i, hf.Name, hf.Type, hf.Tag.Get("json"), wf.Name, wf.Type, wf.Tag.Get("json"))
		}
	}
	// And the conversions carry every field.
	m := goldenManifestValue()
	m.Logical = &LogicalTarget{DB: "db"}
	if got := m.Header.wire().header(); !reflect.DeepEqual(got, m.Header) {
		t.Fatalf("round trip through headerWire: %+v, want %+v", got, m.Header)
	}
}

// A manifest is encoded file by file as it is compressed (sealManifest);
// the bytes are those json.Marshal makes of the whole, and it loads back
// as it was.
func TestStreamedManifestEncodingIsJSONMarshal(t *testing.T) {
	_, r := memRepo(t)
	full := writeBackup(t, r, KindFull, nil, sampleFiles())
	for _, m := range []*Manifest{
		full,
		{Header: Header{ID: "20261123T104500Z-1a2b3c4d", Kind: KindFull, Label: `<"quoted"> & more`},
			Files: []FileEntry{{Path: "base/1/<odd> \"name\"\u2028", Mode: 0o600, Size: 0, MTime: time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("x", 3600))}}},
		{Header: Header{ID: "20261123T104500Z-1a2b3c4e", Kind: KindLogical}, Files: []FileEntry{}},
	} {
		var b bytes.Buffer
		n, err := writeManifestJSON(&b, m)
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(m.wire())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b.Bytes(), want) || n != int64(len(want)) {
			t.Fatalf("manifest %s encoded file by file:\n%s\nwant\n%s", m.ID, b.Bytes(), want)
		}
		blob, err := r.sealManifest(m)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := r.openObject(blob, manifestName(m.ID))
		if err != nil || !bytes.Equal(plain, want) {
			t.Fatalf("sealed manifest %s opens to %d bytes (%v), want the %d of json.Marshal", m.ID, len(plain), err, len(want))
		}
	}
	got, err := r.LoadManifest(context.Background(), full.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != full.ID || len(got.Files) != len(full.Files) || got.Files[0].Checksum != full.Files[0].Checksum {
		t.Fatalf("loaded manifest differs from the one written")
	}
}
