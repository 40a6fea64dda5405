package logical

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	cases := []struct {
		in   string
		want []string
		err  string
	}{
		{in: "orders", want: []string{"orders"}},
		{in: "App.Orders", want: []string{"app", "orders"}},
		{in: `"App"."My Orders"`, want: []string{"App", "My Orders"}},
		{in: `app."q1.results"`, want: []string{"app", "q1.results"}},
		{in: `"say ""hi"""`, want: []string{`say "hi"`}},
		{in: `"Sales Dept"."Q1.Results"`, want: []string{"Sales Dept", "Q1.Results"}},
		{in: "", err: "empty part"},
		{in: "app.", err: "empty part"},
		{in: ".orders", err: "empty part"},
		{in: `"app`, err: "unterminated"},
		{in: `"app"x`, err: "after a closing quote"},
		{in: `ap"p"`, err: "quote in the middle"},
		{in: "my table", err: "spaces only inside double quotes"},
	}
	for _, tc := range cases {
		got, err := ParseName(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseName(%q) = %q, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseName(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	cases := []struct {
		schema, table string
		want          Request
		err           string
	}{
		{table: "app.orders", want: Request{DB: "shop", Schema: "app", Table: "orders"}},
		{schema: "app", table: "orders", want: Request{DB: "shop", Schema: "app", Table: "orders"}},
		{schema: "app", table: "app.orders", want: Request{DB: "shop", Schema: "app", Table: "orders"}},
		{schema: `"Sales Dept"`, want: Request{DB: "shop", Schema: "Sales Dept"}},
		{table: "orders", want: Request{DB: "shop", Table: "orders"}},
		{schema: "app", table: "other.orders", err: "give one"},
		{table: "a.b.c", err: "[SCHEMA.]TABLE"},
		{schema: "a.b", err: "one schema name"},
	}
	for _, tc := range cases {
		got, err := ParseRequest("shop", tc.schema, tc.table)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRequest(%q, %q) = %+v, %v; want an error with %q", tc.schema, tc.table, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRequest(%q, %q) = %+v, %v; want %+v", tc.schema, tc.table, got, err, tc.want)
		}
	}
	if _, err := ParseRequest("", "", "t"); err == nil {
		t.Error("a request without a database was accepted")
	}
}
