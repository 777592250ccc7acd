package comet

import (
	"context"
	"testing"
	"time"

	"gopush/api"
	"gopush/conf"
)

func TestTokensWithAuthOn(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.Auth = true
	cfg.Channel.Token.Expire = conf.Duration(time.Hour)
	cfg.Channel.Token.Max = 2
	c := startComet(t, cfg)
	rc := rpcClient(t, c)
	addr := c.TCPAddrs()[0]
	refused := func(key, token string) {
		t.Helper()
		cl := dialTCP(t, addr)
		cl.write(subBytes("sub", key, "30", token, "1"))
		cl.expect("-a\r\n")
		cl.expectClosed(5 * time.Second)
	}
	newToken := func(key, token string, expire int64) {
		t.Helper()
		var r int
		call(t, rc, api.CometNew, &api.CometNewArgs{Key: key, Token: token, Expire: expire}, &r)
	}

	refused("Terry-Mao", "")
	refused("Terry-Mao", "t1")
	newToken("Terry-Mao", "t1", 0)
	subscribeTCP(t, c, "Terry-Mao", "t1", "1")
	refused("Terry-Mao", "wrong")
	ws := dialWS(t, c.WSAddrs()[0], wsQuery("Terry-Mao", "30", "wrong", "1"))
	if got := ws.read(); got != "-a\r\n" {
		t.Fatalf("websocket with a wrong token: %q", got)
	}
	subscribeWS(t, c, "Terry-Mao", "t1", "1")

	// At most token.max (2) tokens per key: the oldest goes.
	newToken("Terry-Mao", "t2", 0)
	newToken("Terry-Mao", "t3", 0)
	refused("Terry-Mao", "t1")
	subscribeTCP(t, c, "Terry-Mao", "t2", "1")
	subscribeTCP(t, c, "Terry-Mao", "t3", "1")

	// A token that is not used expires, and its channel is freed.
	newToken("short", "s", 1)
	time.Sleep(1500 * time.Millisecond)
	refused("short", "s")

	var r int
	for name, a := range map[string]*api.CometNewArgs{
		"empty token":    {Key: "k", Token: ""},
		"empty key":      {Key: "", Token: "t"},
		"negative":       {Key: "k", Token: "t", Expire: -1},
		"huge expire":    {Key: "k", Token: "t", Expire: 1 << 62},
		"oversize token": {Key: "k", Token: string(make([]byte, 2000))},
	} {
		if err := rc.Call(context.Background(), api.CometNew, a, &r); err == nil {
			t.Errorf("New with %s accepted", name)
		}
	}
}

func TestExpiredTokensFreeTheirChannel(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, zkRoot(t), "node1")
	cfg.Channel.Auth = true
	cfg.Channel.Token.Expire = conf.Duration(500 * time.Millisecond)
	c := startComet(t, cfg)
	rc := rpcClient(t, c)
	for _, k := range []string{"a", "b", "c"} {
		var r int
		call(t, rc, api.CometNew, &api.CometNewArgs{Key: k, Token: "t"}, &r)
	}
	if n := statInt(t, c, "type=channel", "current"); n != 3 {
		t.Fatalf("%d channels with three tokens, want 3", n)
	}
	cl := subscribeTCP(t, c, "a", "t", "1")
	cl.nc.Close() // leaves; the token is still live for a moment
	waitIdle(t, c)
}

func TestAuthOffNeedsNoToken(t *testing.T) {
	t.Parallel()
	c := startComet(t, testConfig(t, zkRoot(t), "node1"))
	subscribeTCP(t, c, "anyone", "", "1")
	subscribeTCP(t, c, "anyone", "whatever", "1")
	var r int
	call(t, rpcClient(t, c), api.CometNew, &api.CometNewArgs{Key: "x", Token: "t"}, &r)
	if n := c.hub.numChannels(); n != 1 {
		t.Fatalf("%d channels; New must not keep state when auth is off", n)
	}
}
