// Command gopush-sub subscribes to a gopush cluster as one key and prints
// every message it receives, one JSON line each:
//
//	{"mid":17000000000000001,"gid":0,"msg":{"test":1}}
//
// It asks web which comet serves the key, stays subscribed with heartbeats,
// and after any disconnect comes back and fetches what it missed, so each
// message is printed once, in mid order. Connection events go to stderr.
//
//	gopush-sub -web http://localhost:8090 -key Terry-Mao
//	gopush-sub -web localhost:8090 -key Terry-Mao -proto websocket -n 10
//	gopush-sub -web https://push.example.com -key Terry-Mao -proto websocket -tls -ca ca.pem
//
// -tls subscribes over TLS (wss, or TCP over TLS: docs/protocol.md §2.4); -ca names a
// PEM file of the authorities to trust instead of the system's, and also
// implies -tls.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"gopush/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole command; it returns the exit code: 0 done, 1 failure,
// 2 bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("gopush-sub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	web := fs.String("web", "http://localhost:8090", "base URL of web's public API")
	key := fs.String("key", "", "the key to subscribe as (required)")
	token := fs.String("token", "", "token, when comet has auth = true")
	proto := fs.String("proto", client.TCP, "tcp or websocket")
	hb := fs.Duration("heartbeat", client.MinHeartbeat, "heartbeat interval (whole seconds, at least 30s)")
	ver := fs.String("ver", client.DefaultVersion, "client version sent on subscribe")
	mid := fs.String("mid", "0", "mid of the last private message already seen; stored messages above it are fetched first")
	pmid := fs.String("pmid", "0", "the same for public messages (gid 1)")
	count := fs.Int("n", 0, "exit after this many messages (0: run until interrupted)")
	verbose := fs.Bool("v", false, "log connection events to stderr")
	useTLS := fs.Bool("tls", false, "subscribe over TLS (wss, or TCP over TLS), verifying comet's certificate")
	caFile := fs.String("ca", "", "PEM file of the CAs to trust for comet and an https web (implies -tls; default: the system's)")
	serverName := fs.String("servername", "", "name to check comet's certificate against (default: the host web answers)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: gopush-sub -key KEY [-web URL] [-proto tcp|websocket] [-tls [-ca FILE]] [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gopush-sub: unexpected arguments %q\n", fs.Args())
		return 2
	}
	last, err := strconv.ParseInt(*mid, 10, 64)
	if err != nil {
		fmt.Fprintf(stderr, "gopush-sub: -mid %q is not an integer\n", *mid)
		return 2
	}
	lastPublic, err := strconv.ParseInt(*pmid, 10, 64)
	if err != nil {
		fmt.Fprintf(stderr, "gopush-sub: -pmid %q is not an integer\n", *pmid)
		return 2
	}
	if *count < 0 {
		fmt.Fprintln(stderr, "gopush-sub: -n must not be negative")
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	var tlsCfg *tls.Config
	switch {
	case *caFile != "":
		if tlsCfg, err = client.RootCAs(*caFile); err != nil {
			fmt.Fprintf(stderr, "gopush-sub: -ca: %v\n", err)
			return 2
		}
	case *useTLS || *serverName != "":
		tlsCfg = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if tlsCfg != nil {
		tlsCfg.ServerName = *serverName
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	c, err := client.New(client.Config{
		Web: *web, Key: *key, Token: *token, Proto: *proto, Heartbeat: *hb, TLS: tlsCfg,
		Version: *ver, LastMid: last, LastPublicMid: lastPublic, Logger: logger,
		OnError: func(err error) { logger.Warn("gopush-sub: connection problem", "err", err) },
	})
	if err != nil {
		fmt.Fprintf(stderr, "gopush-sub: %v\n", err)
		return 2
	}
	defer c.Close()
	enc := json.NewEncoder(stdout)
	got := 0
	for {
		select {
		case <-ctx.Done():
			return 0
		case m, ok := <-c.Messages():
			if !ok {
				return 1
			}
			line := struct {
				Mid int64           `json:"mid"`
				Gid int             `json:"gid"`
				Msg json.RawMessage `json:"msg"`
			}{m.Mid, m.Gid, m.Msg}
			if err := enc.Encode(line); err != nil {
				if errors.Is(err, syscall.EPIPE) {
					return 0
				}
				fmt.Fprintf(stderr, "gopush-sub: writing: %v\n", err)
				return 1
			}
			got++
			if *count > 0 && got >= *count {
				return 0
			}
		}
	}
}
