package lsn

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestParseFormatRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want LSN
		text string // String() of the result
	}{
		{"zero", "0/0", 0, "0/0"},
		{"low half only", "0/3000060", 0x3000060, "0/3000060"},
		{"both halves", "16/B374D848", 0x16B374D848, "16/B374D848"},
		{"largest", "FFFFFFFF/FFFFFFFF", 1<<64 - 1, "FFFFFFFF/FFFFFFFF"},
		{"lower case is read and printed upper case", "1a/ffffffff", 0x1AFFFFFFFF, "1A/FFFFFFFF"},
		{"leading zeros are read and not printed", "00000001/00000010", 0x100000010, "1/10"},
		{"surrounding white space is ignored (psql output, label files)", " 0/5000028\n", 0x5000028, "0/5000028"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("Parse(%q) = %#x, %v; want %#x", tc.in, uint64(got), err, uint64(tc.want))
			}
			if s := got.String(); s != tc.text {
				t.Fatalf("String() = %q, want %q", s, tc.text)
			}
			if back, err := Parse(got.String()); err != nil || back != got {
				t.Fatalf("Parse(String()) = %v, %v; want %v", back, err, got)
			}
		})
	}
}

func TestParseRefusesMalformedInputNamingIt(t *testing.T) {
	cases := []struct{ name, in string }{
		{"empty", ""},
		{"no slash", "3000060"},
		{"two slashes", "0/1/2"},
		{"empty high half", "/1"},
		{"empty low half", "1/"},
		{"not hexadecimal", "0/XYZ"},
		{"high half over 32 bits", "100000000/0"},
		{"low half over 32 bits", "0/100000000"},
		{"sign", "+1/0"},
		{"negative", "-1/0"},
		{"hex prefix", "0x1/0"},
		{"white space inside", "0 /1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want an error", tc.in, l)
			}
			for _, want := range []string{"LSN", `"` + tc.in + `"`, "X/Y", "hexadecimal"} {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("Parse(%q) error %q does not mention %q", tc.in, err, want)
				}
			}
		})
	}
}

func TestTextEncoding(t *testing.T) {
	type doc struct {
		At   LSN `json:"at"`
		Skip LSN `json:"skip,omitempty"`
	}
	b, err := json.Marshal(doc{At: 0x16B374D848})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"at":"16/B374D848"}`; string(b) != want {
		t.Fatalf("marshal = %s, want %s (the text form; a zero LSN is empty for omitempty)", b, want)
	}
	var d doc
	if err := json.Unmarshal([]byte(`{"at":"1/10","skip":"0/5"}`), &d); err != nil || d.At != 0x100000010 || d.Skip != 5 {
		t.Fatalf("unmarshal = %+v, %v", d, err)
	}
	if err := json.Unmarshal([]byte(`{"at":"nonsense"}`), &d); err == nil || !strings.Contains(err.Error(), `"nonsense"`) {
		t.Fatalf("unmarshal of a malformed LSN: err = %v, want one naming the input", err)
	}
}
