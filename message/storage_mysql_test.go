package message

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"gopush/api"
	"gopush/conf"
	"gopush/internal/testenv"
)

func openDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestMySQLCleaner: the periodic cleaner deletes expired rows and keeps
// the others.
func TestMySQLCleaner(t *testing.T) {
	t.Parallel()
	dsn := testenv.MySQLDatabase(t)
	cfg := mysqlConfig(map[string]string{"node1:1": dsn}, 20)
	cfg.MySQL.Clean = conf.Duration(100 * time.Millisecond)
	db := openDB(t, dsn)
	now := time.Now().Unix()
	for i, ttl := range []int64{now - 100, now - 1, now + 3600} {
		if _, err := db.Exec(`INSERT INTO private_msg (skey, mid, ttl, msg, ctime, mtime) VALUES (?, ?, ?, ?, NOW(), NOW())`,
			"k", i+1, ttl, "{}"); err != nil {
			t.Fatal(err)
		}
	}
	openStorage(t, cfg)
	testenv.WaitFor(t, 15*time.Second, "the cleaner to delete the expired rows", func() bool {
		var mids []int64
		rows, err := db.Query(`SELECT mid FROM private_msg ORDER BY mid`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var m int64
			rows.Scan(&m)
			mids = append(mids, m)
		}
		return slices.Equal(mids, []int64{3})
	})
}

// TestMySQLLimits: keys longer than 64 bytes or not UTF-8, and
// messages longer than the blob column, are parameter errors, not
// truncated rows; the largest that fit are stored whole.
func TestMySQLLimits(t *testing.T) {
	t.Parallel()
	cfg := mysqlConfig(map[string]string{"node1:1": testenv.MySQLDatabase(t)}, 20)
	cfg.Storage.MaxSize = 1 << 20
	c := serve(t, cfg, openStorage(t, cfg))
	mid := baseMid()

	wantParamError(t, "65-byte key", c.save(strings.Repeat("k", 65), mid, `{}`, 60))
	wantParamError(t, "64-character key of 128 bytes", c.save(strings.Repeat("é", 64), mid, `{}`, 60))
	wantParamError(t, "key not UTF-8", c.save("k\xff", mid, `{}`, 60))
	long := `"` + strings.Repeat("x", 65534) + `"` // 65536 bytes
	wantParamError(t, "message over the blob column", c.save("k", mid, long, 60))

	key := strings.Repeat("é", 32) // 64 bytes
	fits := long[:65534] + `"`
	c.mustSave(key, mid, fits, 60)
	if got := c.mustGet(key, 0); len(got) != 1 || string(got[0].Msg) != fits {
		t.Errorf("64-byte key with a 65535-byte message: got %d messages", len(got))
	}
}

// TestMySQLShardDown: with shard b unreachable, a multi-key save reports
// exactly b's keys, calls for b's keys name the shard, a's keys keep
// working, and b works again when it comes back, with its rows intact.
func TestMySQLShardDown(t *testing.T) {
	t.Parallel()
	dsnA, dsnB := testenv.MySQLDatabase(t), testenv.MySQLDatabase(t)
	mc, err := mysql.ParseDSN(dsnB)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testenv.NewProxy(t, mc.Addr)
	mc.Addr = proxy.Addr()
	mc.Timeout = 2 * time.Second
	cfg := mysqlConfig(map[string]string{"a:1": dsnA, "b:2": mc.FormatDSN()}, 20)
	ms, err := NewMySQLStorage(cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	c := serve(t, cfg, ms)

	keys, onA, onB := splitKeys(t, fmt.Sprintf("%.50s", testenv.Unique(t)), 30, ms.ShardOf)
	base := baseMid()
	c.mustSave(onB[0], base, `"before"`, 600)

	proxy.Pause()
	var fk api.MessageSavePrivatesResp
	ids := make([]int64, len(keys))
	for i := range ids {
		ids[i] = base + 1 + int64(i)
	}
	if err := c.call(api.MessageSavePrivatesEach, &api.MessageSavePrivatesEachArgs{
		Keys: keys, MsgIds: ids, Msg: json.RawMessage(`"during"`), Expire: 600}, &fk); err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(fk.FKeys))
	if want := slices.Sorted(slices.Values(onB)); !slices.Equal(got, want) {
		t.Errorf("FKeys with b down: %v, want b's keys %v", got, want)
	}
	if _, err := c.get(onB[0], 0); err == nil || !strings.Contains(err.Error(), "mysql shard b (") {
		t.Errorf("get on the unreachable shard: %v, want an error naming shard b", err)
	}
	if got := c.mustGet(onA[0], 0); len(got) != 1 {
		t.Errorf("key on shard a while b is down: %v, want one message", got)
	}

	proxy.Resume()
	if got := c.mustGet(onB[0], 0); !sameMids(got, base) || string(got[0].Msg) != `"before"` {
		t.Errorf("b's key after b came back: %v, want the message stored before the outage", got)
	}
	c.mustSave(onB[1], base+100, `"after"`, 600)
	if got := c.mustGet(onB[1], 0); !sameMids(got, base+100) {
		t.Errorf("b's key after b came back: mids %v, want base+100", mids(got))
	}
}

// TestMySQLCheck names exactly the shards that do not answer.
func TestMySQLCheck(t *testing.T) {
	t.Parallel()
	good := testenv.MySQLDatabase(t)
	mc, err := mysql.ParseDSN(good)
	if err != nil {
		t.Fatal(err)
	}
	mc.Addr = testenv.FreeAddr(t) // nothing listens there
	cfg := mysqlConfig(map[string]string{"up:1": good, "down:1": mc.FormatDSN()}, 20)
	errs := openStorage(t, cfg).Check(context.Background())
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "mysql shard down ("+mc.Addr) {
		t.Errorf("Check: %v, want one error naming shard down", errs)
	}
}
