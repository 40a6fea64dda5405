package logical

import (
	"fmt"
	"strings"
)

// ParseName reads an SQL name as PostgreSQL's tools do: parts separated by
// dots, each either unquoted (folded to lower case) or in double quotes
// (kept exactly; a doubled quote stands for one). It returns the exact
// parts: `app.Orders` is [app orders], `"App"."My.Orders"` is
// [App My.Orders].
func ParseName(s string) ([]string, error) {
	var parts []string
	var cur strings.Builder
	quoted, inQuotes, empty := false, false, true
	flush := func() error {
		if empty {
			return fmt.Errorf("name %q: an empty part (write [SCHEMA.]NAME; quote names with dots, spaces or capitals: '\"My Schema\".\"Orders\"')", s)
		}
		parts = append(parts, cur.String())
		cur.Reset()
		quoted, empty = false, true
		return nil
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case inQuotes && ch == '"' && i+1 < len(s) && s[i+1] == '"':
			cur.WriteByte('"')
			i++
		case inQuotes && ch == '"':
			inQuotes = false
		case inQuotes:
			cur.WriteByte(ch)
		case ch == '"':
			if !empty && !quoted {
				return nil, fmt.Errorf("name %q: a quote in the middle of an unquoted part", s)
			}
			inQuotes, quoted, empty = true, true, false
		case ch == '.':
			if err := flush(); err != nil {
				return nil, err
			}
		case ch == ' ' || ch == '\t':
			return nil, fmt.Errorf("name %q: spaces only inside double quotes (\"my table\")", s)
		default:
			if quoted {
				return nil, fmt.Errorf("name %q: characters after a closing quote", s)
			}
			if ch >= 'A' && ch <= 'Z' {
				ch += 'a' - 'A'
			}
			cur.WriteByte(ch)
			empty = false
		}
	}
	if inQuotes {
		return nil, fmt.Errorf("name %q: an unterminated double quote", s)
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return parts, nil
}

// Request is what a logical backup or restore was asked for: exact names,
// Schema empty when a table was named without one.
type Request struct {
	DB, Schema, Table string
}

// ParseRequest turns --schema and --table as given into exact names: a
// schema-qualified --table, or --schema with an unqualified --table, or
// --schema alone. Conflicting schemas are refused.
func ParseRequest(db, schema, table string) (Request, error) {
	r := Request{DB: db}
	if db == "" {
		return r, fmt.Errorf("name the database (--db)")
	}
	if schema != "" {
		p, err := ParseName(schema)
		if err != nil {
			return r, fmt.Errorf("--schema: %w", err)
		}
		if len(p) != 1 {
			return r, fmt.Errorf("--schema %q: one schema name (quote a name with dots: '\"my.schema\"')", schema)
		}
		r.Schema = p[0]
	}
	if table != "" {
		p, err := ParseName(table)
		if err != nil {
			return r, fmt.Errorf("--table: %w", err)
		}
		switch len(p) {
		case 1:
			r.Table = p[0]
		case 2:
			if r.Schema != "" && r.Schema != p[0] {
				return r, fmt.Errorf("--table %q names schema %q but --schema says %q: give one", table, p[0], r.Schema)
			}
			r.Schema, r.Table = p[0], p[1]
		default:
			return r, fmt.Errorf("--table %q: write [SCHEMA.]TABLE (quote a name with dots: 'app.\"my.table\"')", table)
		}
	}
	return r, nil
}

// quoteIdent quotes one exact name for SQL and for the patterns of pg_dump
// (inside double quotes a pattern matches literally).
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func (r Request) String() string {
	switch {
	case r.Table != "" && r.Schema != "":
		return fmt.Sprintf("table %s.%s of database %s", quoteIdent(r.Schema), quoteIdent(r.Table), r.DB)
	case r.Table != "":
		return fmt.Sprintf("table %s of database %s", quoteIdent(r.Table), r.DB)
	case r.Schema != "":
		return fmt.Sprintf("schema %s of database %s", quoteIdent(r.Schema), r.DB)
	}
	return "database " + r.DB
}
