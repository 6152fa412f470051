// Command ferretdb runs FerretDB v1 (MongoDB wire protocol on SQLite) for local development and
// tests. It wraps the embeddable package because the upstream command, built with `go install`,
// panics at start-up without the version files that only its own release build writes.
//
// FerretDB has no authentication, so the embedded mode keeps other local users out by listening
// on a Unix socket in a directory only the broker's user can enter (--listen-unix) instead of a
// TCP port, holds an exclusive lock on the data directory (--lock-file) so two never share one,
// and exits when its parent does (--exit-with-stdin: the parent holds the write end of stdin, so
// stdin ends whenever the parent process ends, even on SIGKILL).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// revision is printed by --revision; the broker rebuilds a binary that prints another one.
const revision = "oauth2-broker-ferretdb-4"

func main() {
	listenAddr := flag.String("listen-addr", "", "TCP address to listen on (default 127.0.0.1:27017 without --listen-unix)")
	listenUnix := flag.String("listen-unix", "", "Unix socket path to listen on")
	lockFile := flag.String("lock-file", "", "file to hold an exclusive lock on while running; exit 3 if another process holds it")
	exitWithStdin := flag.Bool("exit-with-stdin", false, "exit when stdin ends (when the parent process exits)")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite URI (a directory, ending in /)")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	printRevision := flag.Bool("revision", false, "print the wrapper's revision and exit")
	flag.Parse()

	if *printRevision {
		fmt.Println(revision)
		return
	}
	if *listenAddr == "" && *listenUnix == "" {
		*listenAddr = "127.0.0.1:27017"
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: --log-level: %v\n", err)
		os.Exit(2)
	}
	dir, err := sqliteDir(*sqliteURL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: --sqlite-url: %v\n", err)
		os.Exit(2)
	}
	printed := slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})
	logger := slog.New(&newCollectionHook{Handler: printed, dir: dir, logger: slog.New(printed)})

	if *lockFile != "" {
		// Held until the process exits: the kernel releases it whichever way that happens.
		lock, err := os.OpenFile(*lockFile, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ferretdb: --lock-file: %v\n", err)
			os.Exit(1)
		}
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			fmt.Fprintf(os.Stderr, "ferretdb: another FerretDB is running on this data directory (%s is locked)\n", *lockFile)
			os.Exit(3)
		}
		defer lock.Close()
		// The launcher waits for this line before it tries the socket: until then, a socket that
		// answers may still be another FerretDB's.
		fmt.Fprintf(os.Stderr, "ferretdb: locked %s\n", *lockFile)
	}
	if *listenUnix != "" {
		// A socket left by a FerretDB that was killed; with the lock held, nobody else uses it.
		if err := os.Remove(*listenUnix); err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(os.Stderr, "ferretdb: --listen-unix: %v\n", err)
			os.Exit(1)
		}
	}

	// Before FerretDB opens the files and, with --lock-file, holding the lock: nothing else uses them.
	started := time.Now()
	indexed, err := indexAll(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: indexing _id: %v\n", err)
		os.Exit(1)
	}
	if indexed > 0 {
		fmt.Fprintf(os.Stderr, "ferretdb: indexed _id in %d tables in %d ms\n", indexed, time.Since(started).Milliseconds())
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listenAddr, Unix: *listenUnix},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: *sqliteURL,
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *exitWithStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}

	fmt.Fprintf(os.Stderr, "ferretdb: listening on %s%s\n", *listenAddr, *listenUnix)
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %v\n", err)
		os.Exit(1)
	}
}
