// Command gopush-floor runs the benchmark's yardsticks (package
// gopush/bench/floor, docs/performance.md): minimal programs that do the
// I/O of a gopush push and nothing else, driven by gopush-bench exactly as
// gopush is.
//
//	gopush-floor writer -tcp ADDR -http ADDR
//	    the bare writer: subscribers connect to -tcp (comet's TCP
//	    protocol); -http serves /1/server/get and the admin push paths
//	    (private, mprivate, all, room, room/join, room/del), each writing
//	    the frame to the connections it names.
//	gopush-floor push-comet -tcp ADDR -rpc ADDR
//	    the second half of the bare push path: subscribers on -tcp, the
//	    gob net/rpc call Floor.Push on -rpc writes one frame to the key's
//	    subscriber.
//	gopush-floor push-web -http ADDR -rpc ADDR -comet-tcp ADDR
//	    the first half: /1/admin/push/private checks the body is JSON and
//	    calls Floor.Push on -rpc once; /1/server/get answers -comet-tcp.
//
// Each runs until SIGINT or SIGTERM.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"gopush/bench/floor"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	tcp := fs.String("tcp", "127.0.0.1:0", "subscribers' TCP address (comet's tcp.bind)")
	httpAddr := fs.String("http", "127.0.0.1:0", "HTTP address (web's http.bind and admin.bind in one)")
	rpcAddr := fs.String("rpc", "127.0.0.1:0", "the RPC address of push-comet")
	cometTCP := fs.String("comet-tcp", "", "push-web: the -tcp address of push-comet, for /1/server/get")
	fs.Parse(os.Args[2:])

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "writer":
		err = runWriter(ctx, *tcp, *httpAddr, log)
	case "push-comet":
		err = runPushComet(ctx, *tcp, *rpcAddr, log)
	case "push-web":
		if *cometTCP == "" {
			err = fmt.Errorf("push-web needs -comet-tcp")
			break
		}
		err = runPushWeb(ctx, *httpAddr, *rpcAddr, *cometTCP, log)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gopush-floor:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gopush-floor writer|push-comet|push-web [flags] (see the command's doc)")
	os.Exit(2)
}

func runWriter(ctx context.Context, tcp, httpAddr string, log *slog.Logger) error {
	hub, err := floor.NewHub(tcp, floor.Fault{}, log)
	if err != nil {
		return err
	}
	defer hub.Close()
	srv, err := floor.ServeHTTP(httpAddr, floor.NewWriter(hub, log).Handler(), log)
	if err != nil {
		return err
	}
	defer srv.Close()
	<-ctx.Done()
	return nil
}

func runPushComet(ctx context.Context, tcp, rpcAddr string, log *slog.Logger) error {
	hub, err := floor.NewHub(tcp, floor.Fault{}, log)
	if err != nil {
		return err
	}
	defer hub.Close()
	pc, err := floor.NewPushComet(hub, rpcAddr, log)
	if err != nil {
		return err
	}
	defer pc.Close()
	<-ctx.Done()
	return nil
}

func runPushWeb(ctx context.Context, httpAddr, rpcAddr, cometTCP string, log *slog.Logger) error {
	pw, err := floor.NewPushWeb(rpcAddr, cometTCP)
	if err != nil {
		return err
	}
	defer pw.Close()
	srv, err := floor.ServeHTTP(httpAddr, pw.Handler(), log)
	if err != nil {
		return err
	}
	defer srv.Close()
	<-ctx.Done()
	return nil
}
