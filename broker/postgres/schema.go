package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// names are the log's objects, quoted and qualified with the schema.
type names struct {
	schema, table string // as configured (validated: [a-z0-9_])

	log, head, keys  string // tables
	logCreated       string // the index of the log's append times
	keysExpiry       string // the index of the keys' expiry
	appendFn, trimFn string // functions
	versions         string // switchboard_schema_version
	// unit names the log: "<schema>.<table>", unquoted. It is the NOTIFY
	// channel, the log's component in switchboard_schema_version, and
	// (prefixed) its trimming lock.
	unit   string
	listen string // the channel, quoted for LISTEN
}

func newNames(schema, table string) names {
	q := func(suffix string) string {
		return pgx.Identifier{schema, table + suffix}.Sanitize()
	}
	unit := schema + "." + table
	return names{
		schema: schema, table: table,
		log: q(""), head: q("_head"), keys: q("_keys"),
		logCreated: pgx.Identifier{table + "_created_at"}.Sanitize(),
		keysExpiry: pgx.Identifier{table + "_keys_expires_at"}.Sanitize(),
		appendFn:   q("_append"), trimFn: q("_trim"),
		versions: pgx.Identifier{schema, "switchboard_schema_version"}.Sanitize(),
		unit:     unit,
		listen:   pgx.Identifier{unit}.Sanitize(),
	}
}

// migration is one step of the log's schema. The steps run in order,
// each once per log: switchboard_schema_version records, per log (its
// "<schema>.<table>"), the last step run. New runs the missing ones (as
// does a node that finds the log's tables gone), all in one transaction
// under an advisory lock, so edges starting together migrate once and
// never see half a schema. A step must be safe to run again on what it
// created (IF NOT EXISTS, OR REPLACE): if the log's tables are dropped,
// every step runs again.
//
// Add a step at the end; never edit one that has shipped.
type migration struct {
	version int
	about   string
	sql     func(n names) string
}

var migrations = []migration{
	{1, "the log, its head (epoch and last position) and its idempotency keys", tablesV1},
	{2, "append and trim", functionsV2},
	{3, "append notifies its records when they fit in a notification", appendV3},
}

// tablesV1: the log (Watermill's message fields, as watermill-sql keeps
// them, plus the position and the append time), its one-row head, and
// the keys. The head's epoch is random, made when the head is created:
// a log dropped and created again has another.
func tablesV1(n names) string {
	return `
CREATE TABLE IF NOT EXISTS ` + n.log + ` (
	pos        bigint      PRIMARY KEY,
	uuid       text        NOT NULL,
	payload    bytea       NOT NULL,
	metadata   jsonb       NOT NULL,
	created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS ` + n.logCreated + ` ON ` + n.log + ` (created_at);
CREATE TABLE IF NOT EXISTS ` + n.head + ` (
	one        boolean     PRIMARY KEY DEFAULT true CHECK (one),
	epoch      text        NOT NULL DEFAULT substr(md5(gen_random_uuid()::text), 1, 16),
	pos        bigint      NOT NULL DEFAULT 0,
	created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO ` + n.head + ` DEFAULT VALUES ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS ` + n.keys + ` (
	key        text        PRIMARY KEY,
	pos        bigint      NOT NULL,
	digest     text        NOT NULL,
	expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS ` + n.keysExpiry + ` ON ` + n.keys + ` (expires_at);
`
}

// functionsV2: append and trim, each one statement for the driver.
//
// Append takes the head row's lock first and keeps it until it commits:
// the next append gets its positions only once this one's rows are
// visible, so positions are visible in their order (see doc.go). Keys
// are decided under the same lock, so two appends with one key never
// race. Positions are dense: a refused duplicate takes none, and a
// failed append gives back all of its own with its rollback.
//
// Trim deletes the oldest records, a prefix of the log, so the log is
// always the positions from its oldest to the head without a hole; it
// skips when another node is trimming.
func functionsV2(n names) string {
	notify := "\t\tPERFORM pg_notify('" + n.unit + "', v_epoch || ' ' || v_last);\n"
	return "\n" + appendFunction(n, "", notify) + "\n" + trimFunction(n)
}

// appendFunction is the append function's SQL with vars declared and
// notify run after the head's update (in a step's own words: a shipped
// step's text never changes).
func appendFunction(n names, vars, notify string) string {
	return `CREATE OR REPLACE FUNCTION ` + n.appendFn + `(
	p_uuids text[], p_payloads bytea[], p_metadata jsonb[], p_keys text[], p_digests text[], p_window interval)
RETURNS TABLE (pos bigint, duplicate boolean, digest text, epoch text)
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
	v_n       int := coalesce(cardinality(p_uuids), 0);
	v_epoch   text;
	v_last    bigint;
	v_at      timestamptz;
	v_fresh   boolean[] := '{}';
	v_pos     bigint[] := '{}';
	v_dup     boolean[] := '{}';
	v_digest  text[] := '{}';
	v_fpos    bigint;
	v_fdigest text;
` + vars + `BEGIN
	SELECT h.epoch, h.pos INTO v_epoch, v_last FROM ` + n.head + ` h FOR NO KEY UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'switchboard: % has no row: drop the log''s tables to create the log again', '` + n.unit + `_head';
	END IF;
	v_at := clock_timestamp();
	FOR i IN 1..v_n LOOP
		IF p_keys[i] IS NOT NULL THEN
			INSERT INTO ` + n.keys + ` AS k (key, pos, digest, expires_at)
			VALUES (p_keys[i], v_last + 1, coalesce(p_digests[i], ''), v_at + p_window)
			ON CONFLICT (key) DO UPDATE
				SET pos = excluded.pos, digest = excluded.digest, expires_at = excluded.expires_at
				WHERE k.expires_at <= v_at;
			IF NOT FOUND THEN
				SELECT k.pos, k.digest INTO v_fpos, v_fdigest FROM ` + n.keys + ` k WHERE k.key = p_keys[i];
				v_fresh[i] := false; v_pos[i] := v_fpos; v_dup[i] := true; v_digest[i] := v_fdigest;
				CONTINUE;
			END IF;
		END IF;
		v_last := v_last + 1;
		v_fresh[i] := true; v_pos[i] := v_last; v_dup[i] := false; v_digest[i] := NULL;
	END LOOP;
	INSERT INTO ` + n.log + ` (pos, uuid, payload, metadata, created_at)
	SELECT t.p, t.u, t.b, t.m, v_at
	FROM unnest(v_pos, p_uuids, p_payloads, p_metadata, v_fresh) AS t(p, u, b, m, f)
	WHERE t.f;
	IF FOUND THEN
		UPDATE ` + n.head + ` SET pos = v_last;
` + notify + `	END IF;
	RETURN QUERY SELECT t.p, t.d, t.g, v_epoch FROM unnest(v_pos, v_dup, v_digest) AS t(p, d, g);
END
$fn$;
`
}

// trimFunction is the trim function's SQL.
func trimFunction(n names) string {
	return `CREATE OR REPLACE FUNCTION ` + n.trimFn + `(p_max_msgs bigint, p_max_age interval)
RETURNS bigint
LANGUAGE plpgsql AS $fn$
#variable_conflict use_column
DECLARE
	v_cut  bigint := 0;
	v_head bigint;
	v_n    bigint;
BEGIN
	IF NOT pg_try_advisory_xact_lock(hashtextextended('switchboard_trim:` + n.unit + `', 0)) THEN
		RETURN 0;
	END IF;
	SELECT h.pos INTO v_head FROM ` + n.head + ` h;
	IF p_max_msgs IS NOT NULL THEN
		v_cut := v_head - p_max_msgs;
	END IF;
	IF p_max_age IS NOT NULL THEN
		v_cut := greatest(v_cut, coalesce(
			(SELECT max(l.pos) FROM ` + n.log + ` l WHERE l.created_at < clock_timestamp() - p_max_age), 0));
	END IF;
	DELETE FROM ` + n.log + ` l WHERE l.pos <= v_cut;
	GET DIAGNOSTICS v_n = ROW_COUNT;
	DELETE FROM ` + n.keys + ` k WHERE k.expires_at < clock_timestamp();
	RETURN v_n;
END
$fn$;
`
}

// appendV3: the notification carries the append's records when they fit
// (PostgreSQL refuses payloads from 8000 bytes): "<epoch> <last>
// <records>", the records a JSON array of [pos, uuid, payload in base64,
// metadata], so a reader that follows the log delivers them without a
// query. Larger appends notify "<epoch> <last>" as before, and the
// reader queries. (A node of an older version reads the longer payload
// as a notification of an unknown position and queries: it only waits
// a PollInterval for an append that committed during its query.)
func appendV3(n names) string {
	vars := "\tv_size    bigint := 0;\n\tv_note    text;\n\tv_recs    text;\n"
	notify := `		v_note := v_epoch || ' ' || v_last;
		SELECT coalesce(sum(octet_length(t.b) * 4 / 3 + octet_length(t.u) + octet_length(t.m::text) + 32), 0) INTO v_size
		FROM unnest(p_uuids, p_payloads, p_metadata, v_fresh) AS t(u, b, m, f) WHERE t.f;
		IF v_size < ` + strconv.Itoa(notifyRecordsMax) + ` THEN
			SELECT json_agg(json_build_array(t.p, t.u, translate(encode(t.b, 'base64'), E'\n', ''), t.m) ORDER BY t.p)::text INTO v_recs
			FROM unnest(v_pos, p_uuids, p_payloads, p_metadata, v_fresh) AS t(p, u, b, m, f) WHERE t.f;
			IF octet_length(v_note) + 1 + octet_length(v_recs) < ` + strconv.Itoa(notifyMax) + ` THEN
				v_note := v_note || ' ' || v_recs;
			END IF;
		END IF;
		PERFORM pg_notify('` + n.unit + `', v_note);
`
	return "\n" + appendFunction(n, vars, notify)
}

// A notification's payload is below notifyMax bytes (PostgreSQL's limit
// is 8000); records go into it when their estimated size is below
// notifyRecordsMax.
const (
	notifyMax        = 7900
	notifyRecordsMax = 7000
)

// migrate brings the log's schema to the last migration, creating the
// log if it has none yet. If the log's tables (the log or its head) are
// gone although steps were recorded, what is left of them is dropped and
// every step runs again: the log is created anew, under a new epoch.
func (d *driver) migrate(ctx context.Context) error {
	d.migrating.Lock()
	defer d.migrating.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*d.cfg.QueryTimeout)
	defer cancel()
	n := d.names
	steps := make([]step, len(migrations))
	for i, m := range migrations {
		steps[i] = step{m.version, m.about, m.sql(n)}
	}
	return migrateUnit(ctx, d.pub, unit{
		what: "log", component: n.unit, schema: n.schema, versions: n.versions,
		tables: []string{n.log, n.head, n.keys},
		intact: []string{pgx.Identifier{n.schema, n.table}.Sanitize(), pgx.Identifier{n.schema, n.table + "_head"}.Sanitize()},
		steps:  steps,
	}, d.log)
}

// unit is a set of tables and functions migrated together, by versioned
// steps: the log (migrations), or the outbox (outboxMigrations).
type unit struct {
	what      string // for the log lines: "log", "outbox"
	component string // its key in switchboard_schema_version
	schema    string // unquoted
	versions  string // switchboard_schema_version, quoted and qualified
	// tables are dropped (if present) when a table of intact is missing
	// although steps were recorded: every step then runs again.
	tables []string
	intact []string // qualified, quoted names to_regclass must find
	steps  []step
}

// step is a migration with its SQL spelled out.
type step struct {
	version int
	about   string
	sql     string
}

// migrateUnit runs the steps of u not yet recorded, all in one
// transaction under an advisory lock (one migration at a time in the
// whole database, whichever unit), so nodes starting together migrate
// once and never see half a schema. A database with a newer version
// than the last step (a newer node's) is left as it is.
func migrateUnit(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, u unit, logger *slog.Logger) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() {
		// Bounded: a server that stopped answering must not hold the
		// caller (a reader holding its connection, Close behind it).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('switchboard_schema', 0))`); err != nil {
		return err
	}
	var hasSchema bool
	if err := tx.QueryRow(ctx, `SELECT to_regnamespace($1) IS NOT NULL`, u.schema).Scan(&hasSchema); err != nil {
		return err
	}
	if !hasSchema {
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{u.schema}.Sanitize()); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+u.versions+` (
	component   text        PRIMARY KEY,
	version     integer     NOT NULL,
	migrated_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
		return err
	}
	var version int
	var intact bool
	err = tx.QueryRow(ctx, `SELECT coalesce((SELECT version FROM `+u.versions+` WHERE component = $1), 0),
	(SELECT bool_and(to_regclass(t) IS NOT NULL) FROM unnest($2::text[]) t)`,
		u.component, u.intact).Scan(&version, &intact)
	if err != nil {
		return err
	}
	if version > 0 && !intact {
		logger.Warn("the "+u.what+"'s tables are gone: creating them anew, under a new epoch", u.what, u.component)
		if _, err := tx.Exec(ctx, `DROP TABLE IF EXISTS `+strings.Join(u.tables, ", ")); err != nil {
			return err
		}
		version = 0
	}
	last := version
	for _, m := range u.steps {
		if m.version <= version {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return fmt.Errorf("migration %d of the %s (%s): %w", m.version, u.what, m.about, err)
		}
		last = m.version
	}
	if last == version {
		return nil // nothing to do (or a newer node's schema): the deferred rollback releases the lock
	}
	if _, err := tx.Exec(ctx, `INSERT INTO `+u.versions+` (component, version) VALUES ($1, $2)
ON CONFLICT (component) DO UPDATE SET version = excluded.version, migrated_at = now()`, u.component, last); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	logger.Info("migrated the "+u.what+"'s schema", u.what, u.component, "from", version, "to", last)
	return nil
}

// undefined reports whether err says a table or function of the log is
// missing (dropped): migrating creates it again.
func undefined(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "42P01" || pe.Code == "42883")
}
