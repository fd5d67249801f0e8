// Command clickhouse-go-check drives ClickHouse's official Go client (github.com/ClickHouse/clickhouse-go/v2) over
// its HTTP protocol against an endpoint: DDL, a batch insert, a select, bound and prepared selects, a large
// streamed result and an error, with the client's compression option set by the caller (none, lz4, zstd).
// It prints one line per step; the Python test (tests/integration/security/test_endpoint_go_client.py) checks them.
//
// Usage: clickhouse-go-check HOST:PORT USER PASSWORD TABLE COMPRESSION
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: clickhouse-go-check HOST:PORT USER PASSWORD TABLE none|lz4|zstd")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]); err != nil {
		fmt.Fprintln(os.Stderr, "failed:", err)
		os.Exit(1)
	}
}

func options(addr, user, password, compression string) (*clickhouse.Options, error) {
	methods := map[string]clickhouse.CompressionMethod{
		"none": clickhouse.CompressionNone,
		"lz4":  clickhouse.CompressionLZ4,
		"zstd": clickhouse.CompressionZSTD,
	}
	method, ok := methods[compression]
	if !ok {
		return nil, fmt.Errorf("unknown compression %q", compression)
	}
	return &clickhouse.Options{
		Protocol:    clickhouse.HTTP,
		Addr:        []string{addr},
		Auth:        clickhouse.Auth{Database: "default", Username: user, Password: password},
		Compression: &clickhouse.Compression{Method: method},
		DialTimeout: 10 * time.Second,
		ReadTimeout: 60 * time.Second,
	}, nil
}

func run(addr, user, password, table, compression string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opts, err := options(addr, user, password, compression)
	if err != nil {
		return err
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return fmt.Errorf("open: %w", err)
	}
	defer conn.Close()
	if err := conn.Ping(ctx); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	if err := conn.Exec(ctx, "CREATE TABLE "+table+
		" (id UInt32, name String, score Float64) ENGINE = MergeTree ORDER BY id"); err != nil {
		return fmt.Errorf("create: %w", err)
	}

	// A batch insert: Native blocks in the request body (native-compressed with lz4/zstd: decompress=1).
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
	if err != nil {
		return fmt.Errorf("prepare batch: %w", err)
	}
	for i := 0; i < 1000; i++ {
		if err := batch.Append(uint32(i), fmt.Sprintf("name-%d", i), float64(i)*0.5); err != nil {
			return fmt.Errorf("append: %w", err)
		}
	}
	appended := batch.Rows()
	if err := batch.Send(); err != nil {
		return fmt.Errorf("send batch: %w", err)
	}
	fmt.Println("inserted", appended)

	var count, sum uint64
	if err := conn.QueryRow(ctx, "SELECT count(), sum(id) FROM "+table).Scan(&count, &sum); err != nil {
		return fmt.Errorf("count: %w", err)
	}
	fmt.Println("count", count, "sum", sum)

	// Server-side parameters ({id:UInt32} sent as param_id) and the client's own positional binding.
	var name string
	var score float64
	if err := conn.QueryRow(ctx, "SELECT name, score FROM "+table+" WHERE id = {id:UInt32}",
		clickhouse.Named("id", "42")).Scan(&name, &score); err != nil {
		return fmt.Errorf("bound select: %w", err)
	}
	fmt.Println("bound", name, score)
	if err := conn.QueryRow(ctx, "SELECT name FROM "+table+" WHERE id = ? AND name = ?", 7, "name-7").
		Scan(&name); err != nil {
		return fmt.Errorf("positional select: %w", err)
	}
	fmt.Println("positional", name)

	// database/sql over the same options: a prepared INSERT in a transaction (one batch on commit), then a
	// select with bound arguments.
	db := clickhouse.OpenDB(opts)
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sql begin: %w", err)
	}
	stmt, err := tx.PrepareContext(ctx, "INSERT INTO "+table)
	if err != nil {
		return fmt.Errorf("sql prepare: %w", err)
	}
	for i := 1000; i < 1500; i++ {
		if _, err := stmt.ExecContext(ctx, uint32(i), fmt.Sprintf("sql-%d", i), float64(i)); err != nil {
			return fmt.Errorf("sql exec: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sql commit: %w", err)
	}
	var names []string
	for _, id := range []int{3, 1499} {
		var got string
		if err := db.QueryRowContext(ctx, "SELECT name FROM "+table+" WHERE id = ?", id).Scan(&got); err != nil {
			return fmt.Errorf("sql select %d: %w", id, err)
		}
		names = append(names, got)
	}
	var sqlCount uint64
	if err := db.QueryRowContext(ctx, "SELECT count() FROM "+table+" WHERE name LIKE 'sql-%'").
		Scan(&sqlCount); err != nil {
		return fmt.Errorf("sql count: %w", err)
	}
	fmt.Println("sql", sqlCount, strings.Join(names, " "))

	// Many blocks in one response (each one native-compressed with lz4/zstd: compress=1).
	rows, err := conn.Query(ctx, "SELECT number FROM numbers(300000)")
	if err != nil {
		return fmt.Errorf("stream: %w", err)
	}
	var total, n uint64
	for rows.Next() {
		if err := rows.Scan(&n); err != nil {
			return fmt.Errorf("stream scan: %w", err)
		}
		total += n
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("stream rows: %w", err)
	}
	rows.Close()
	fmt.Println("streamed", total)

	// Column types whose Native layout the endpoint rewrites for the client's protocol revision.
	var (
		lc   string
		null *string
		arr  []uint8
		m    map[string]uint8
		ts   time.Time
		fs   string
	)
	if err := conn.QueryRow(ctx, "SELECT toLowCardinality('low'), CAST(NULL AS Nullable(String)), [1, 2, 3], "+
		"map('k', 7), toDateTime64('2026-01-02 03:04:05.250', 3, 'UTC'), toFixedString('ab', 2)").
		Scan(&lc, &null, &arr, &m, &ts, &fs); err != nil {
		return fmt.Errorf("types: %w", err)
	}
	fmt.Println("types", lc, null == nil, arr, m["k"], ts.UTC().Format("2006-01-02T15:04:05.000"), fs)
	rows, err = conn.Query(ctx, "SELECT toLowCardinality(if(number % 3 = 0, NULL, toString(number % 5))) "+
		"FROM numbers(10) ORDER BY number")
	if err != nil {
		return fmt.Errorf("low cardinality: %w", err)
	}
	var seen []string
	for rows.Next() {
		var v *string
		if err := rows.Scan(&v); err != nil {
			return fmt.Errorf("low cardinality scan: %w", err)
		}
		if v == nil {
			seen = append(seen, "NULL")
		} else {
			seen = append(seen, *v)
		}
	}
	rows.Close()
	fmt.Println("low-cardinality", strings.Join(seen, ","))

	// An error reaches the client as ClickHouse's exception (code and name), and the connection stays usable.
	err = conn.QueryRow(ctx, "SELECT * FROM no_such_table_here").Scan(&n)
	var exc *clickhouse.Exception
	switch {
	case err == nil:
		fmt.Println("error none")
	case errors.As(err, &exc):
		fmt.Println("error", exc.Code, exc.Name, strings.ReplaceAll(exc.Message, "\n", " "))
	default:
		fmt.Println("error unparsed", strings.ReplaceAll(err.Error(), "\n", " "))
	}
	var one uint8
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("after error: %w", err)
	}
	fmt.Println("after-error", one)
	return nil
}
