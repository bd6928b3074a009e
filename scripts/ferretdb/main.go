// Command ferretdb is a MongoDB-compatible server for this project's tests and `make run`: FerretDB 1.x with its SQLite backend.
//
// It wraps FerretDB's embeddable package (github.com/FerretDB/FerretDB/ferretdb)
// because the upstream cmd/ferretdb panics when built from the module proxy
// (its version file is written at release time). It keeps FerretDB's own flag
// names for the two settings it needs, keeps all state in the SQLite directory,
// sends nothing anywhere (no telemetry) and logs to stderr.
//
//	ferretdb --listen-addr=127.0.0.1:27017 --sqlite-url=file:/abs/data/dir/
//	ferretdb --healthcheck --listen-addr=127.0.0.1:27017   (exit 0 when the server answers a ping)
//	ferretdb --healthcheck --tries=3 --kill-unanswered ...  (a container's healthcheck: see below)
//	mongosh ...                                            (the same binary under that name: --healthcheck)
//
// The healthcheck sends {ping: 1} over the wire protocol (OP_MSG) and waits 2 s
// for {ok: 1}: a server that is alive but wedged (it accepts connections and
// answers nothing) fails it, where a TCP connect alone would pass. With
// --tries=N it tries N times, 0.5 s apart, before failing. With
// --kill-unanswered, when every try failed and the server of this container
// answered a ping before (so it is not still starting), it kills (SIGKILL)
// every process of the container but PID 1, which must then be an init
// (compose's `init: true`): the server dies, the init exits, and `restart:
// always` restarts the container; docker-compose 1.29 does not restart an
// unhealthy container by itself. The first answer is marked in --mark (a
// file holding PID 1's start time, so a restarted container starts afresh).
// Under the name mongosh it is the healthcheck with its defaults, so that a
// stack file's `mongosh --eval ...` healthcheck (written for the mongo image)
// works unchanged in this image (scripts/docker/ferretdb.Dockerfile installs the link).
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"path/filepath"
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
	tries       int    // pings before the healthcheck fails
	kill        bool   // kill the container's server when they all fail (see the file's comment)
	mark        string // where the first answer is marked
}

// parseOptions reads the command line; it exits with status 2 on a bad flag.
func parseOptions() options {
	var o options
	flag.StringVar(&o.listenAddr, "listen-addr", "127.0.0.1:27017", "listen TCP address")
	flag.StringVar(&o.sqliteURL, "sqlite-url", "file:data/", "SQLite URI (a directory, ending in /)")
	flag.StringVar(&o.postgresURL, "postgresql-url", "", "PostgreSQL URL; when set, the PostgreSQL backend is used instead of SQLite")
	flag.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	flag.BoolVar(&o.healthcheck, "healthcheck", false, "exit 0 if the server on --listen-addr answers a ping within 2 s, 1 otherwise")
	flag.IntVar(&o.tries, "tries", 1, "healthcheck: pings (0.5 s apart) before it fails")
	flag.BoolVar(&o.kill, "kill-unanswered", false, "healthcheck: when every ping failed and the server answered before, SIGKILL every process but PID 1")
	flag.StringVar(&o.mark, "mark", "/data/.healthcheck-answered", "healthcheck: the file marking the server's first answer")
	if filepath.Base(os.Args[0]) == "mongosh" {
		// the mongo image's healthcheck command line: its flags are not ours
		o.listenAddr, o.healthcheck, o.tries = "127.0.0.1:27017", true, 1
		return o
	}
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

// pingMsg is an OP_MSG holding {ping: 1, $db: "admin"}.
func pingMsg() []byte {
	var doc bytes.Buffer
	doc.Write([]byte{0, 0, 0, 0})
	doc.WriteString("\x10ping\x00")
	binary.Write(&doc, binary.LittleEndian, int32(1))
	doc.WriteString("\x02$db\x00")
	binary.Write(&doc, binary.LittleEndian, int32(len("admin")+1))
	doc.WriteString("admin\x00\x00")
	d := doc.Bytes()
	binary.LittleEndian.PutUint32(d, uint32(len(d)))
	msg := make([]byte, 16+4+1, 16+4+1+len(d))
	binary.LittleEndian.PutUint32(msg[4:], 1)     // requestID
	binary.LittleEndian.PutUint32(msg[12:], 2013) // OP_MSG; flagBits 0; section kind 0
	msg = append(msg, d...)
	binary.LittleEndian.PutUint32(msg, uint32(len(msg)))
	return msg
}

// ping sends {ping: 1} to the server at addr and returns nil when it answers
// {ok: 1} within timeout, or an error saying what went wrong.
func ping(addr string, timeout time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(pingMsg()); err != nil {
		return err
	}
	var head [16]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return fmt.Errorf("no answer to a ping within %v: %w", timeout, err)
	}
	n := binary.LittleEndian.Uint32(head[:])
	if n < 16 || n > 1<<20 || binary.LittleEndian.Uint32(head[12:]) != 2013 {
		return errors.New("the answer to a ping is not an OP_MSG")
	}
	body := make([]byte, n-16)
	if _, err := io.ReadFull(conn, body); err != nil {
		return fmt.Errorf("a cut answer to a ping: %w", err)
	}
	// ok is a double in the reply: 0x01 "ok\0" then 8 bytes
	if i := bytes.Index(body, []byte("\x01ok\x00")); i >= 0 && i+12 <= len(body) &&
		math.Float64frombits(binary.LittleEndian.Uint64(body[i+4:])) == 1 {
		return nil
	}
	return errors.New("the server answered a ping without ok: 1")
}

// containerStart returns PID 1's start time (field 22 of /proc/1/stat), or "" when unknown.
func containerStart() string {
	stat, err := os.ReadFile("/proc/1/stat")
	if err != nil {
		return ""
	}
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 19 {
			return f[19]
		}
	}
	return ""
}

// healthcheck pings the server o.tries times; returns 0 at the first answer
// (marking it in o.mark), else 1, after killing the container's server when
// o.kill is set and the server answered before (see the file's comment).
func healthcheck(o options) int {
	var err error
	for i := 0; i < o.tries; i++ {
		if i > 0 {
			time.Sleep(500 * time.Millisecond)
		}
		if err = ping(o.listenAddr, 2*time.Second); err == nil {
			if o.kill {
				os.WriteFile(o.mark, []byte(containerStart()), 0o644)
			}
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "ferretdb: %s: %v (%d tries)\n", o.listenAddr, err, o.tries)
	if o.kill {
		if mark, _ := os.ReadFile(o.mark); len(mark) > 0 && string(mark) == containerStart() {
			fmt.Fprintf(os.Stderr, "ferretdb: the server answered before and answers no more: killing it so that the container restarts\n")
			syscall.Kill(-1, syscall.SIGKILL)
		}
	}
	return 1
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
		os.Exit(healthcheck(o))
	}
	os.Exit(serve(o, newLogger(o.logLevel)))
}
