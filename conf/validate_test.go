package conf

import (
	"reflect"
	"testing"
)

func TestParseShardName(t *testing.T) {
	good := []struct {
		in     string
		name   string
		weight int
	}{
		{"node1:1", "node1", 1},
		{"node2:2", "node2", 2},
		{"a:b:10", "a:b", 10}, // the weight is after the last colon
	}
	for _, tc := range good {
		name, w, err := ParseShardName(tc.in)
		if err != nil || name != tc.name || w != tc.weight {
			t.Errorf("ParseShardName(%q) = %q, %d, %v; want %q, %d", tc.in, name, w, err, tc.name, tc.weight)
		}
	}
	for _, in := range []string{"", "node1", ":1", "node1:", "node1:0", "node1:-1", "node1:x", "node1:1.5"} {
		if _, _, err := ParseShardName(in); err == nil {
			t.Errorf("ParseShardName(%q) accepted it", in)
		}
	}
}

func TestParseRedisAddr(t *testing.T) {
	good := []struct {
		in   string
		want RedisAddr
	}{
		{"tcp@localhost:6379", RedisAddr{Network: "tcp", Address: "localhost:6379"}},
		{"tcp@10.0.0.1:6380#s3cret", RedisAddr{Network: "tcp", Address: "10.0.0.1:6380", Password: "s3cret"}},
		{"unix@/run/redis/redis.sock", RedisAddr{Network: "unix", Address: "/run/redis/redis.sock"}},
		{"unix@/tmp/r.sock#pw#with#hashes", RedisAddr{Network: "unix", Address: "/tmp/r.sock", Password: "pw#with#hashes"}},
		{"sentinel@10.0.0.1:26379,10.0.0.2:26379,s3:26379/mymaster#pw", RedisAddr{Network: "sentinel",
			Address: "10.0.0.1:26379,10.0.0.2:26379,s3:26379/mymaster", Password: "pw",
			Sentinels: []string{"10.0.0.1:26379", "10.0.0.2:26379", "s3:26379"}, Master: "mymaster"}},
		{"sentinel@localhost:26379/m", RedisAddr{Network: "sentinel", Address: "localhost:26379/m",
			Sentinels: []string{"localhost:26379"}, Master: "m"}},
	}
	for _, tc := range good {
		got, err := ParseRedisAddr(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseRedisAddr(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{"", "localhost:6379", "tcp@", "tcp@localhost", "udp@localhost:6379", "unix@relative.sock", "@localhost:6379", "#pw",
		"sentinel@localhost:26379", "sentinel@localhost:26379/", "sentinel@/m", "sentinel@a:1,,b:2/m", "sentinel@a/m"} {
		if a, err := ParseRedisAddr(in); err == nil {
			t.Errorf("ParseRedisAddr(%q) = %+v, want an error", in, a)
		}
	}
}

func TestAddrListTakesAStringOrAList(t *testing.T) {
	path := write(t, "web.toml", `
http.bind = " localhost:8090 ,localhost:9090,"
admin.bind = ["localhost:8091,localhost:9091", "localhost:10091"]
`)
	w, err := LoadWeb(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.HTTP.Bind; len(got) != 2 || got[0] != "localhost:8090" || got[1] != "localhost:9090" {
		t.Errorf("http.bind = %q", got)
	}
	if got := w.Admin.Bind; len(got) != 3 || got[2] != "localhost:10091" {
		t.Errorf("admin.bind = %q", got)
	}
}

func TestParseNets(t *testing.T) {
	for _, s := range []string{"", "10.0.0.0/33", "host.example", "1.2.3"} {
		if _, err := ParseNets([]string{s}); err == nil {
			t.Errorf("ParseNets(%q) accepted it", s)
		}
	}
	p, err := ParseNets([]string{"::1", "10.1.2.3/8", "::ffff:127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"::1/128", "10.0.0.0/8", "127.0.0.1/32"}
	for i, w := range want {
		if p[i].String() != w {
			t.Errorf("ParseNets[%d] = %v, want %s", i, p[i], w)
		}
	}
}
