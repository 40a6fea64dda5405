package logical

import "testing"

// pg_dump and pg_restore get the connection's TLS settings as PG*
// variables: they must be read back from either form of connection
// string, quoted or not.
func TestConninfoSettingReadsBothForms(t *testing.T) {
	cases := []struct{ name, conninfo, key, want string }{
		{"keyword form, plain", "host=10.0.0.1 sslmode=verify-full user=postgres", "sslmode", "verify-full"},
		{"keyword form, quoted with a space and an escaped quote", `host=h sslrootcert='/etc/pg guard/it\'s ca.crt' port=1`, "sslrootcert", `/etc/pg guard/it's ca.crt`},
		{"keyword form, spaces around =", "host = h sslmode = require", "sslmode", "require"},
		{"keyword form, absent", "host=h user=u", "sslmode", ""},
		{"URI form", "postgres://u@10.0.0.1:5432/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.crt", "sslrootcert", "/etc/ca.crt"},
		{"a value that merely contains the key", "host=h application_name=sslmode=x", "sslmode", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := conninfoSetting(tc.conninfo, tc.key); got != tc.want {
				t.Fatalf("conninfoSetting(%q, %q) = %q, want %q", tc.conninfo, tc.key, got, tc.want)
			}
		})
	}
}
