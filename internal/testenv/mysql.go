package testenv

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// MySQLDatabase creates a fresh database on the shared MariaDB holding the
// message schema of conf/mysql.sql, drops it when the test ends, and
// returns its DSN.
func MySQLDatabase(t testing.TB) string {
	t.Helper()
	root := MySQLRoot(t)
	cfg, err := mysql.ParseDSN(root)
	if err != nil {
		t.Fatalf("GOPUSH_TEST_MYSQL %q: %v", root, err)
	}
	cfg.DBName = ""
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()

	name := "gopush_" + Unique(t)
	if _, err := admin.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		db, err := sql.Open("mysql", cfg.FormatDSN())
		if err != nil {
			t.Error(err)
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS `" + name + "`"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})

	cfg.DBName = name
	dsn := cfg.FormatDSN()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, stmt := range mysqlSchema(t) {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatalf("apply conf/mysql.sql to %s: %v", name, err)
		}
	}
	return dsn
}

// mysqlSchema reads conf/mysql.sql and splits it into statements.
func mysqlSchema(t testing.TB) []string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(root, "conf", "mysql.sql"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(string(raw), "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		lines = append(lines, line)
	}
	var out []string
	for _, stmt := range strings.Split(strings.Join(lines, "\n"), ";") {
		if stmt = strings.TrimSpace(stmt); stmt != "" {
			out = append(out, stmt)
		}
	}
	return out
}
