package testenv

import (
	"database/sql"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/go-zookeeper/zk"
	"github.com/gomodule/redigo/redis"
)

// These tests talk to each private service that `make test` starts
// (scripts/services.sh), so a broken service shows up here by name.

func TestZooKeeperAnswers(t *testing.T) {
	t.Parallel()
	addr := ZK(t)
	if ok := zk.FLWRuok([]string{addr}, 5*time.Second); len(ok) != 1 || !ok[0] {
		t.Fatalf("ZooKeeper at %s does not answer ruok with imok", addr)
	}
	conn, _, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	root := ZKRoot(t)
	if _, err := conn.Create(root, []byte("parent"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatalf("create %s: %v", root, err)
	}
	child, err := conn.Create(root+"/n-", []byte(`{"weight":1}`), zk.FlagEphemeral|zk.FlagSequence, zk.WorldACL(zk.PermAll))
	if err != nil {
		t.Fatalf("create ephemeral sequential under %s: %v", root, err)
	}
	data, _, err := conn.Get(child)
	if err != nil || string(data) != `{"weight":1}` {
		t.Fatalf("get %s = %q, %v", child, data, err)
	}
	if err := conn.Delete(child, -1); err != nil {
		t.Fatal(err)
	}
	if err := conn.Delete(root, -1); err != nil {
		t.Fatal(err)
	}
	if ok, _, err := conn.Exists(root); err != nil || ok {
		t.Fatalf("%s still exists after delete (err %v)", root, err)
	}
}

func TestRedisAnswers(t *testing.T) {
	t.Parallel()
	addr := Redis(t)
	c, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(5*time.Second),
		redis.DialReadTimeout(5*time.Second), redis.DialWriteTimeout(5*time.Second))
	if err != nil {
		t.Fatalf("dial Redis at %s: %v", addr, err)
	}
	defer c.Close()
	if pong, err := redis.String(c.Do("PING")); err != nil || pong != "PONG" {
		t.Fatalf("PING = %q, %v", pong, err)
	}
	key := Unique(t)
	defer c.Do("DEL", key)
	if _, err := c.Do("SET", key, "value", "EX", 60); err != nil {
		t.Fatal(err)
	}
	if got, err := redis.String(c.Do("GET", key)); err != nil || got != "value" {
		t.Fatalf("GET %s = %q, %v", key, got, err)
	}
}

func TestMariaDBAnswers(t *testing.T) {
	t.Parallel()
	dsn := MySQLRoot(t)
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("GOPUSH_TEST_MYSQL %q: %v", dsn, err)
	}
	cfg.Timeout = 5 * time.Second
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Ping(); err != nil {
		t.Fatalf("MariaDB at %s: %v", cfg.Addr, err)
	}
	name := "svc_" + Unique(t)
	if _, err := db.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		t.Fatalf("create database: %v", err)
	}
	defer db.Exec("DROP DATABASE IF EXISTS `" + name + "`")
	if _, err := db.Exec("CREATE TABLE `" + name + "`.t (id BIGINT UNSIGNED PRIMARY KEY, v BLOB)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO `"+name+"`.t VALUES (?, ?)", uint64(1)<<62, []byte("blob")); err != nil {
		t.Fatal(err)
	}
	var v []byte
	if err := db.QueryRow("SELECT v FROM `"+name+"`.t WHERE id = ?", uint64(1)<<62).Scan(&v); err != nil || string(v) != "blob" {
		t.Fatalf("select = %q, %v", v, err)
	}
	if _, err := db.Exec("DROP DATABASE `" + name + "`"); err != nil {
		t.Fatal(err)
	}
}
