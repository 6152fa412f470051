package main

// An index for FerretDB's `_id` lookups on SQLite (issue 21), added from outside FerretDB.
//
// FerretDB 1.24.2 indexes `_id` on `_ferretdb_sjson->"_id"` but pushes `_id` filters down as
// `_ferretdb_sjson->'$._id' = ?` (metadata.IDColumn, used by Query, UpdateAll, DeleteAll and
// Explain in internal/backends/sqlite/collection.go). SQLite matches an index to a WHERE clause by
// the text of its expression, so every find, update and delete by `_id` scanned the whole table.
// A second, non-unique index on exactly the pushed-down expression makes them searches. FerretDB's
// own unique index still enforces uniqueness and reports duplicates (code 11000), and FerretDB
// never sees ours: listIndexes reads its own metadata, dropCollection's DROP TABLE removes it,
// renameCollection keeps the table. This depends on FerretDB's table layout and that SQL text,
// so go.mod pins FerretDB to exactly v1.24.2 and test/store/ferretdb-id-index.test.ts checks with
// FerretDB's explain that the index is used.

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // the driver FerretDB uses, under the same name ("sqlite")
)

// idIndexPrefix + table name names our index; FerretDB names its own `<table>_<index name>`.
const idIndexPrefix = "oauth2_broker_id_"

// indexDatabase gives every collection table of one database file the index it lacks, and returns
// how many it indexed. Its connection is open only for this call, and cannot create the file
// (mode=rw), so a database dropped meanwhile is not brought back.
func indexDatabase(dir *url.URL, database string) (int, error) {
	file := *dir
	file.Path = path.Join(dir.Path, database+".sqlite")
	file.Opaque = file.Path
	file.RawQuery = "mode=rw&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", file.String())
	if err != nil {
		return 0, err
	}
	defer db.Close()

	rows, err := db.Query(`SELECT table_name FROM _ferretdb_collections AS c WHERE NOT EXISTS
		(SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ? || c.table_name)`, idIndexPrefix)
	if err != nil {
		return 0, err
	}
	var tables []string
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			rows.Close()
			return 0, err
		}
		tables = append(tables, table)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, table := range tables {
		// A new table is empty; an existing one of 100 000 documents took 0.5 s.
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, idIndexPrefix+table, table)
		if _, err := db.Exec(q); err != nil {
			return 0, err
		}
	}
	return len(tables), nil
}

// indexAll indexes every database in the directory; run before FerretDB opens them, so it is
// alone on the files (data directories made before this index existed get it here).
func indexAll(dir *url.URL) (int, error) {
	files, err := filepath.Glob(filepath.Join(dir.Path, "*.sqlite"))
	if err != nil {
		return 0, err
	}
	total := 0
	for _, f := range files {
		n, err := indexDatabase(dir, strings.TrimSuffix(filepath.Base(f), ".sqlite"))
		if err != nil {
			return total, fmt.Errorf("%s: %w", f, err)
		}
		total += n
	}
	return total, nil
}

// sqliteDir is the directory of --sqlite-url ("file:data/" or "file:/abs/dir/?pragmas"), parsed
// as FerretDB parses it.
func sqliteDir(sqliteURL string) (*url.URL, error) {
	u, err := url.Parse(sqliteURL)
	if err != nil {
		return nil, err
	}
	if u.Path == "" {
		u.Path = u.Opaque
	}
	u.Opaque = u.Path
	u.RawPath = ""
	u.OmitHost = true
	return u, nil
}

// newCollectionHook is the slog.Handler FerretDB logs through; it indexes a collection's table as
// FerretDB creates it. FerretDB logs every SQL statement at debug level on a logger named "sqlite"
// and then the database (util/fsql), with the statement's "args". When the statement that
// registers a new collection (INSERT INTO _ferretdb_collections, metadata/registry.go's
// collectionCreate) has run, this indexes that database there and then: in FerretDB's goroutine,
// while FerretDB holds its registry lock. So the table has the index before its first document,
// and no dropDatabase (which takes that lock) runs while our connection is open: a connection
// still open when FerretDB closes and removes a file would leave the file's WAL behind.
type newCollectionHook struct {
	slog.Handler          // prints at --log-level
	dir          *url.URL // --sqlite-url
	names        []string // this logger's "name" attributes
	statement    bool     // this logger carries a statement's "args"
	logger       *slog.Logger
}

func (h *newCollectionHook) database() string {
	if h.statement && len(h.names) == 2 && h.names[0] == "sqlite" {
		return h.names[1]
	}
	return ""
}

func (h *newCollectionHook) Enabled(ctx context.Context, level slog.Level) bool {
	return h.Handler.Enabled(ctx, level) || h.database() != ""
}

func (h *newCollectionHook) Handle(ctx context.Context, r slog.Record) error {
	if database := h.database(); database != "" && strings.HasPrefix(r.Message, `<<< INSERT INTO "_ferretdb_collections"`) {
		if _, err := indexDatabase(h.dir, database); err != nil {
			// The collection works, only its `_id` lookups stay scans; the next start retries.
			h.logger.Warn("could not index a new collection's _id", slog.String("database", database), slog.Any("error", err))
		}
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *newCollectionHook) WithAttrs(attrs []slog.Attr) slog.Handler {
	next := *h
	next.Handler = h.Handler.WithAttrs(attrs)
	for _, a := range attrs {
		switch a.Key {
		case "name":
			next.names = append(h.names[:len(h.names):len(h.names)], a.Value.String())
		case "args":
			next.statement = true
		}
	}
	return &next
}

func (h *newCollectionHook) WithGroup(name string) slog.Handler {
	next := *h
	next.Handler = h.Handler.WithGroup(name)
	return &next
}
