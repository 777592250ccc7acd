package message

import (
	"database/sql"
	"slices"
	"strings"
	"testing"

	"gopush/internal/testenv"
)

// TestRoomMySQLKeysAreCaseSensitive: "Alice" and "alice" are two keys and
// "R" and "r" two rooms, as on Redis (the columns use a binary collation).
func TestRoomMySQLKeysAreCaseSensitive(t *testing.T) {
	t.Parallel()
	cfg := withRoomNames(t, mysqlConfig(map[string]string{"node1:1": testenv.MySQLDatabase(t)}, 20), 100)
	c := serveRooms(t, cfg, openStorage(t, cfg))
	if err := c.join("R", "Alice", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := c.join("r", "ALICE"); err != nil {
		t.Fatal(err)
	}
	if got := c.mustRoomKeys("R"); !slices.Equal(got, []string{"Alice", "alice"}) {
		t.Errorf("room R: %q", got)
	}
	if got := c.mustRoomKeys("r"); !slices.Equal(got, []string{"ALICE"}) {
		t.Errorf("room r: %q", got)
	}
}

// TestRoomMySQLWithoutTables: a database set up before rooms existed
// answers an error that says what to do, and private messages still work.
func TestRoomMySQLWithoutTables(t *testing.T) {
	t.Parallel()
	dsn := testenv.MySQLDatabase(t)
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("DROP TABLE room_key, public_msg"); err != nil {
		t.Fatal(err)
	}
	cfg := withRoomNames(t, mysqlConfig(map[string]string{"node1:1": dsn}, 20), 100)
	c := serveRooms(t, cfg, openStorage(t, cfg))
	for what, err := range map[string]error{
		"join":        c.join("r", "k"),
		"save public": c.savePublic(1, `{}`, 60),
	} {
		if err == nil || !strings.Contains(err.Error(), "conf/mysql.sql") {
			t.Errorf("%s without the tables: %v, want a hint at conf/mysql.sql", what, err)
		}
	}
	c.mustSave("k", 5, `{"still":"works"}`, 60)
	if got := c.mustGet("k", 0); !sameMids(got, 5) {
		t.Errorf("private messages: %v", mids(got))
	}
}
