package message

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"gopush/internal/testenv"
)

// TestKeysAreCaseSensitive: keys that differ only in case are different
// subscribers (docs/protocol.md §7: on Redis the set is named by the key itself), so
// neither storage type may hand one key's offline messages to the other.
func TestKeysAreCaseSensitive(t *testing.T) {
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			cfg := b.cfg(t, 20)
			c := serve(t, cfg, openStorage(t, cfg))
			u := testenv.Unique(t)
			key, lower := "Case-"+u, "case-"+u
			base := baseMid()
			c.mustSave(key, base+1, msgN(1), 600)
			if got := c.mustGet(lower, 0); len(got) != 0 {
				t.Fatalf("messages of %q returned for %q: mids %v", key, lower, mids(got))
			}
			c.mustSave(lower, base+2, msgN(2), 600)
			if got := c.mustGet(key, 0); !sameMids(got, base+1) {
				t.Fatalf("get %q: mids %v, want only its own %d", key, mids(got), base+1)
			}
			if err := c.del(lower); err != nil {
				t.Fatal(err)
			}
			if got := c.mustGet(key, 0); !sameMids(got, base+1) {
				t.Fatalf("deleting %q removed messages of %q: mids %v", lower, key, mids(got))
			}
		})
	}
}

// TestMySQLCheckNamesACaseInsensitiveKeyColumn: a private_msg table as 1.0.5
// created it (default, case-insensitive collation on skey) or no table at
// all is reported by Check, naming the shard, so that the daemon warns at
// start; the shipped schema passes.
func TestMySQLCheckNamesACaseInsensitiveKeyColumn(t *testing.T) {
	t.Parallel()
	good, old, empty := testenv.MySQLDatabase(t), testenv.MySQLDatabase(t), testenv.MySQLDatabase(t)
	for dsn, stmt := range map[string]string{
		old:   "ALTER TABLE private_msg MODIFY skey varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL",
		empty: "DROP TABLE private_msg",
	} {
		db, err := sql.Open("mysql", dsn)
		if err != nil {
			t.Fatal(err)
		}
		_, err = db.Exec(stmt)
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	cfg := mysqlConfig(map[string]string{"good:1": good, "old:1": old, "empty:1": empty}, 20)
	errs := openStorage(t, cfg).Check(context.Background())
	if len(errs) != 2 {
		t.Fatalf("Check: %v, want two errors (old and empty)", errs)
	}
	if s := errs[0].Error(); !strings.Contains(s, "mysql shard empty") || !strings.Contains(s, "private_msg not found") {
		t.Errorf("Check on a database without the table: %v", errs[0])
	}
	if s := errs[1].Error(); !strings.Contains(s, "mysql shard old") || !strings.Contains(s, "collation utf8mb4_general_ci") {
		t.Errorf("Check on a 1.0.5 table: %v", errs[1])
	}
}
