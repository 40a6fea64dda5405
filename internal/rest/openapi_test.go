package rest

import (
	"fmt"
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
	dryRun := map[string]bool{}
	for path, methods := range doc.Paths {
		for m, op := range methods {
			role, _ := op["x-role"].(string)
			documented[strings.ToUpper(m)+" "+path] = role
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				if pm, ok := p.(map[string]any); ok && pm["$ref"] == "#/components/parameters/dryRun" {
					dryRun[strings.ToUpper(m)+" "+path] = true
				}
			}
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
		case dryRun[rt.Pattern] != rt.Check:
			wrong = append(wrong, fmt.Sprintf("%s: dry_run documented %v, answered %v", rt.Pattern, dryRun[rt.Pattern], rt.Check))
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

// TestRoles pins who may do what: reads are the viewer's; switchover,
// pause, jobs, backups and drills the operator's; the rest the admin's.
func TestRoles(t *testing.T) {
	want := map[string]string{
		"GET /api/v1/cluster": "viewer", "GET /api/v1/history": "viewer", "GET /api/v1/backups": "viewer", "GET /api/v1/drills": "viewer",
		"POST /api/v1/switchover": "operator", "DELETE /api/v1/switchover": "operator", "POST /api/v1/pause": "operator",
		"POST /api/v1/resume": "operator", "POST /api/v1/jobs/{id}/start": "operator", "POST /api/v1/backups": "operator",
		"POST /api/v1/drills": "operator", "POST /api/v1/jobs": "operator",
		"POST /api/v1/takeover": "admin", "POST /api/v1/nodes/{node}/reinit": "admin", "POST /api/v1/restore-cluster": "admin",
		"PATCH /api/v1/config": "admin", "POST /api/v1/users": "admin", "GET /api/v1/users": "admin",
		"POST /api/v1/nodes/{node}/stop": "admin", "DELETE /api/v1/members/{node}": "admin",
	}
	got := map[string]string{}
	for _, rt := range Routes() {
		got[rt.Pattern] = string(rt.Role)
		if rt.Pattern != "POST /api/v1/login" && !rt.Role.Valid() {
			t.Errorf("%s needs no role", rt.Pattern)
		}
		if rt.Pattern != "POST /api/v1/login" && strings.HasPrefix(rt.Pattern, "GET ") == rt.Mutating {
			t.Errorf("%s: mutating %v", rt.Pattern, rt.Mutating)
		}
	}
	for p, role := range want {
		if got[p] != role {
			t.Errorf("%s needs %q, want %q", p, got[p], role)
		}
	}
}
