package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"go.opentelemetry.io/otel"

	"github.com/embedd/embedd/server"
)

// loadServerConfig reads the config file (if any), then the EMBEDD_*
// environment, then applies defaults.
func loadServerConfig(path string) (server.Config, error) {
	var cfg server.Config
	if path != "" {
		var err error
		if cfg, err = server.ReadConfig(path); err != nil {
			return cfg, err
		}
	}
	return cfg.ApplyEnv(os.Getenv).Defaults(), nil
}

func serveCmd(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var config, ortLib string
	configFlag(fs, &config)
	dataDir := dataDirFlag(fs)
	grpcAddr := fs.String("grpc-addr", "", "gRPC listen `address` (overrides config and EMBEDD_GRPC_ADDR)")
	httpAddr := fs.String("http-addr", "", `HTTP listen address, or "off" (overrides config and EMBEDD_HTTP_ADDR)`)
	ortLibFlag(fs, &ortLib)
	searchDevice := fs.String("search-device", "", "search backend: cpu, cuda, cuda:N or auto (overrides config)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: embedd serve [flags]\n\nServes the gRPC embedding API and the OpenAI-compatible HTTP endpoint\nuntil SIGINT or SIGTERM, then drains and exits 0.\n\nflags:")
		fs.PrintDefaults()
	}
	if code, ok := parseArgs(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "embedd serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := loadServerConfig(config)
	if err != nil {
		fmt.Fprintf(stderr, "embedd serve: %v\n", err)
		return 1
	}
	if *grpcAddr != "" {
		cfg.GRPCAddr = *grpcAddr
	}
	if *httpAddr != "" {
		cfg.HTTPAddr = *httpAddr
	}
	if ortLib != "" {
		cfg.ORTLib = ortLib
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if *searchDevice != "" {
		cfg.SearchDevice = *searchDevice
	}
	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		fmt.Fprintf(stderr, "embedd serve: log_level: %v\n", err)
		return 1
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: durationsAsText}))
	if cfg.Tracing.On() {
		// The span exporter reports failed exports to OpenTelemetry's
		// global handler, not to a caller: log them as ours.
		otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("embedd: tracing", "err", err) }))
	}
	srv, err := server.New(cfg, server.WithLogger(log))
	if err != nil {
		fmt.Fprintf(stderr, "embedd serve: %v\n", err)
		return 1
	}
	gl, err := net.Listen("tcp", cfg.GRPCAddr)
	if err != nil {
		fmt.Fprintf(stderr, "embedd serve: grpc_addr: %v\n", err)
		return 1
	}
	var hl net.Listener
	if cfg.HTTPAddr != "off" {
		if hl, err = net.Listen("tcp", cfg.HTTPAddr); err != nil {
			gl.Close()
			fmt.Fprintf(stderr, "embedd serve: http_addr: %v\n", err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := srv.Serve(ctx, gl, hl); err != nil {
		log.Error("embedd: serve failed", "err", err)
		return 1
	}
	return 0
}

// durationsAsText logs durations as Go writes them ("30s"), not as
// nanosecond integers.
func durationsAsText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

const configUsage = "usage: embedd config check FILE\n\nValidates a server config (with the EMBEDD_* environment applied) and its model\nfolders without starting; every problem names the field, the value and the rule."

func configCmd(args []string, stdout, stderr io.Writer) int {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fmt.Fprintln(stdout, configUsage)
			return 0
		}
	}
	if len(args) != 2 || args[0] != "check" || strings.HasPrefix(args[1], "-") {
		fmt.Fprintln(stderr, configUsage)
		return 2
	}
	cfg, err := loadServerConfig(args[1])
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil {
		err = checkModelFolders(cfg)
	}
	if err != nil {
		fmt.Fprintf(stderr, "embedd config check: %s is not valid:\n%v\n", args[1], err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%d models)\n", args[1], len(cfg.Models))
	return 0
}

// checkModelFolders reports model folders that lack the files loading needs.
func checkModelFolders(cfg server.Config) error {
	var errs []error
	for i, m := range cfg.Models {
		if _, err := os.Stat(filepath.Join(m.Path, "tokenizer.json")); err != nil {
			errs = append(errs, fmt.Errorf("models[%d].path: %q has no tokenizer.json", i, m.Path))
		}
		_, e1 := os.Stat(filepath.Join(m.Path, "model.onnx"))
		_, e2 := os.Stat(filepath.Join(m.Path, "onnx", "model.onnx"))
		if e1 != nil && e2 != nil {
			errs = append(errs, fmt.Errorf("models[%d].path: %q has no model.onnx (nor onnx/model.onnx)", i, m.Path))
		}
	}
	return errors.Join(errs...)
}
