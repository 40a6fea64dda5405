package rest

import (
	"os"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestOpenAPIDescribesEveryRoute checks docs/api.yaml against the route
// table: every route is there with its role, and nothing else is.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	data, err := os.ReadFile("../../docs/api.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                               `yaml:"openapi"`
		Paths   map[string]map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("docs/api.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("docs/api.yaml: openapi %q, want 3.x", doc.OpenAPI)
	}
	documented := map[string]string{}
	for path, methods := range doc.Paths {
		for m, op := range methods {
			role, _ := op["x-role"].(string)
			documented[strings.ToUpper(m)+" "+path] = role
		}
	}
	var missing, wrong []string
	for _, rt := range Routes() {
		role, ok := documented[rt.Pattern]
		want := string(rt.Role)
		if want == "" {
			want = "none"
		}
		switch {
		case !ok:
			missing = append(missing, rt.Pattern)
		case role != want:
			wrong = append(wrong, rt.Pattern+": x-role "+role+", the route needs "+want)
		}
		delete(documented, rt.Pattern)
	}
	var extra []string
	for p := range documented {
		extra = append(extra, p)
	}
	sort.Strings(extra)
	if len(missing)+len(wrong)+len(extra) > 0 {
		t.Fatalf("docs/api.yaml and the routes disagree:\nmissing: %v\nwrong role: %v\nno such route: %v", missing, wrong, extra)
	}
	if len(Routes()) < 40 {
		t.Fatalf("only %d routes: the table did not load", len(Routes()))
	}
}
