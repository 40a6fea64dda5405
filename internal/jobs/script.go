package jobs

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Script names an executable that each node allow-lists in its node.yaml
// (jobs.scripts: name → path), with the arguments to run it with. The
// store carries only this data, never a path or a shell string: what runs
// on a host is decided by that host's configuration, so whoever can write
// to the store cannot run a command of their choosing.
type Script struct {
	Name string   `json:"name"`
	Args []string `json:"args,omitempty"`
	// shell is set when the record held a string (a shell snippet of an
	// older release, or a forged record); such a job never runs.
	shell bool
}

// ScriptNamePattern is what a script name looks like.
var ScriptNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)

const (
	maxScriptArgs   = 32
	maxScriptArgLen = 1024
)

// UnmarshalJSON reads a script reference; a JSON string (a shell snippet)
// is kept only as a mark that the job must be refused.
func (s *Script) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		*s = Script{shell: true}
		return nil
	}
	type plain Script
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*s = Script(p)
	return nil
}

// String is the reference as people read it: the name and arguments.
func (s *Script) String() string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(s.Name + " " + strings.Join(s.Args, " "))
}

// validate names what is wrong with the reference held in field.
func (s *Script) validate(field string) []string {
	if s == nil {
		return nil
	}
	if s.shell {
		return []string{field + ": a shell string; a job names a script that node.yaml allow-lists (jobs.scripts) and its arguments, so it is refused"}
	}
	var bad []string
	if !ScriptNamePattern.MatchString(s.Name) {
		bad = append(bad, fmt.Sprintf("%s %q: a script name is lower-case letters, digits, '.', '-' or '_', as listed in jobs.scripts of node.yaml", field, s.Name))
	}
	if len(s.Args) > maxScriptArgs {
		bad = append(bad, fmt.Sprintf("%s: %d arguments, at most %d", field, len(s.Args), maxScriptArgs))
	}
	for i, a := range s.Args {
		if len(a) > maxScriptArgLen || strings.ContainsRune(a, 0) {
			bad = append(bad, fmt.Sprintf("%s: argument %d is longer than %d bytes or holds a NUL", field, i+1, maxScriptArgLen))
		}
	}
	return bad
}

// Scripts lists the job's script references by the role each plays.
func (j Job) Scripts() map[string]*Script {
	out := map[string]*Script{}
	for role, s := range map[string]*Script{"precondition": j.Precondition, "pre script": j.PreScript, "post script": j.PostScript} {
		if s != nil {
			out[role] = s
		}
	}
	return out
}
