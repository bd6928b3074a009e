// Command ferretdb is a MongoDB-compatible server for this project's tests and `make run`: FerretDB 1.x with its SQLite backend.
//
// It wraps FerretDB's embeddable package (github.com/FerretDB/FerretDB/ferretdb)
// because the upstream cmd/ferretdb panics when built from the module proxy
// (its version file is written at release time). It keeps FerretDB's own flag
// names for the two settings it needs, keeps all state in the SQLite directory,
// sends nothing anywhere (no telemetry) and logs to stderr.
//
//	ferretdb --listen-addr=127.0.0.1:27017 --sqlite-url=file:/abs/data/dir/
//	ferretdb --healthcheck --listen-addr=127.0.0.1:27017   (exit 0 when the port answers)
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// options holds the command line.
type options struct {
	listenAddr  string
	sqliteURL   string
	postgresURL string
	logLevel    string
	healthcheck bool
}

// parseOptions reads the command line; it exits with status 2 on a bad flag.
func parseOptions() options {
	var o options
	flag.StringVar(&o.listenAddr, "listen-addr", "127.0.0.1:27017", "listen TCP address")
	flag.StringVar(&o.sqliteURL, "sqlite-url", "file:data/", "SQLite URI (a directory, ending in /)")
	flag.StringVar(&o.postgresURL, "postgresql-url", "", "PostgreSQL URL; when set, the PostgreSQL backend is used instead of SQLite")
	flag.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	flag.BoolVar(&o.healthcheck, "healthcheck", false, "exit 0 if a server accepts connections on --listen-addr, 1 otherwise")
	flag.Parse()
	return o
}

// newLogger returns a text logger on stderr at the named level (info when unknown).
func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// probe returns 0 when a TCP connection to addr succeeds within two seconds, 1 otherwise.
func probe(addr string) int {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %s: %v\n", addr, err)
		return 1
	}
	conn.Close()
	return 0
}

// ensureDir creates the directory of a file: SQLite URL so FerretDB can start
// on a fresh path. Returns an error only when the directory cannot be made.
func ensureDir(sqliteURL string) error {
	path := strings.TrimPrefix(sqliteURL, "file:")
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	if path == "" {
		return nil
	}
	return os.MkdirAll(path, 0o755)
}

// serve runs FerretDB until SIGINT or SIGTERM; returns the process exit status.
func serve(o options, logger *slog.Logger) int {
	cfg := &ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: o.listenAddr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: o.sqliteURL,
	}
	if o.postgresURL != "" {
		cfg.Handler, cfg.SQLiteURL, cfg.PostgreSQLURL = "postgresql", "", o.postgresURL
	} else if err := ensureDir(o.sqliteURL); err != nil {
		logger.Error("cannot create data directory", "error", err)
		return 1
	}
	f, err := ferretdb.New(cfg)
	if err != nil {
		logger.Error("cannot start", "error", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	logger.Info("listening", "addr", o.listenAddr, "sqlite", o.sqliteURL)
	if err := f.Run(ctx); err != nil {
		logger.Error("stopped with error", "error", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

func main() {
	o := parseOptions()
	if o.healthcheck {
		os.Exit(probe(o.listenAddr))
	}
	os.Exit(serve(o, newLogger(o.logLevel)))
}
