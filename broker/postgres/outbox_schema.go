package postgres

import (
	"github.com/jackc/pgx/v5"
)

// outboxNames are the outbox's objects, quoted and qualified with the
// schema. Their names are fixed: backends call switchboard_publish.
type outboxNames struct {
	schema string // as configured (validated: [a-z0-9_])

	outbox, epoch, failed string // tables
	idSeq                 string // the outbox's id sequence
	publishFn, userFn     string // functions
	versions              string // switchboard_schema_version
	// unit names the outbox: "<schema>.switchboard_outbox", unquoted. It
	// is the NOTIFY channel, its component in switchboard_schema_version
	// and (prefixed) the forwarding lock's key.
	unit   string
	listen string // the channel, quoted for LISTEN
}

func newOutboxNames(schema string) outboxNames {
	q := func(name string) string { return pgx.Identifier{schema, name}.Sanitize() }
	unit := schema + ".switchboard_outbox"
	return outboxNames{
		schema: schema,
		outbox: q("switchboard_outbox"), epoch: q("switchboard_outbox_epoch"), failed: q("switchboard_outbox_failed"),
		idSeq:     q("switchboard_outbox_id_seq"),
		publishFn: q("switchboard_publish"), userFn: q("switchboard_publish_user"),
		versions: q("switchboard_schema_version"),
		unit:     unit,
		listen:   pgx.Identifier{unit}.Sanitize(),
	}
}

// outboxMigrations are the outbox's steps, recorded in
// switchboard_schema_version under "<schema>.switchboard_outbox" and run
// like the log's (see migration): in order, each once, in one
// transaction under the advisory lock every migration takes. The outbox
// is a unit of its own, so an edge installs it in a database that is
// not its broker's just as well.
//
// Add a step at the end; never edit one that has shipped.
var outboxMigrations = []struct {
	version int
	about   string
	sql     func(n outboxNames) string
}{
	{1, "the outbox, its epoch and its dead letters", outboxTablesV1},
	{2, "switchboard_publish and switchboard_publish_user", outboxFunctionsV2},
}

func (n outboxNames) schemaUnit() unit {
	steps := make([]step, len(outboxMigrations))
	for i, m := range outboxMigrations {
		steps[i] = step{m.version, m.about, m.sql(n)}
	}
	return unit{
		what: "outbox", component: n.unit, schema: n.schema, versions: n.versions,
		tables: []string{n.outbox, n.epoch},
		intact: []string{n.outbox, n.epoch},
		steps:  steps,
	}
}

// outboxTablesV1: the outbox (a publish request per row, in the shape of
// the server API's POST /publish body), its one-row epoch, and the
// rows that can never be published.
//
// The epoch is random, made with the epoch table: an outbox dropped and
// created again numbers its rows from 1 again under another epoch, so
// the idempotency keys "outbox:<epoch>:<id>" never repeat an old one.
// Dead letters outlive a recreated outbox (their key is the epoch and
// the id).
func outboxTablesV1(n outboxNames) string {
	return `
CREATE TABLE IF NOT EXISTS ` + n.outbox + ` (
	id         bigserial   PRIMARY KEY,
	request    jsonb       NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ` + n.epoch + ` (
	one        boolean     PRIMARY KEY DEFAULT true CHECK (one),
	epoch      text        NOT NULL DEFAULT substr(md5(gen_random_uuid()::text), 1, 16),
	created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
INSERT INTO ` + n.epoch + ` DEFAULT VALUES ON CONFLICT DO NOTHING;
CREATE TABLE IF NOT EXISTS ` + n.failed + ` (
	epoch      text        NOT NULL,
	id         bigint      NOT NULL,
	request    jsonb       NOT NULL,
	error      text        NOT NULL,
	created_at timestamptz NOT NULL,
	failed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
	PRIMARY KEY (epoch, id)
);
`
}

// outboxFunctionsV2: switchboard_publish(room, data, type) and
// switchboard_publish_user(user_id, data), each an insert into the
// outbox and a NOTIFY, both part of the caller's transaction: the row
// and the notification appear at its COMMIT, and vanish with its
// ROLLBACK. PostgreSQL sends one notification per transaction however
// many rows it adds (identical ones are folded).
//
// They check in SQL what the server API's publish checks about names
// (core.ValidateRoom, ValidateUser, ValidateType: their character sets
// and lengths) and that data is not NULL, so a backend's transaction
// fails at the call with a clear message (SQLSTATE 22023) rather than
// the message being refused later. The forwarder checks everything
// again as the API does (reserved types too), and moves what it refuses
// to the dead letters.
//
// A direct message has no type parameter: the API sends every message
// to a user as type "direct".
func outboxFunctionsV2(n outboxNames) string {
	check := func(fn, param, re, rule string) string {
		return `
	IF ` + fn + `.` + param + ` IS NULL OR ` + fn + `.` + param + ` !~ '` + re + `' THEN
		RAISE EXCEPTION 'switchboard: %: want ` + rule + `', coalesce(quote_literal(` + fn + `.` + param + `), 'NULL')
			USING ERRCODE = 'invalid_parameter_value', HINT = '` + param + ` of ` + fn + `';
	END IF;`
	}
	// core.MaxRoomLen, MaxUserLen (128) and MaxTypeLen (32); the
	// characters of core's badNameByte and ValidateType.
	const name = `^[A-Za-z0-9_.:@/=-]{1,128}$`
	const rule = `1 to 128 letters, digits and _-.:@/=`
	noData := func(fn string) string {
		return `
	IF ` + fn + `.data IS NULL THEN
		RAISE EXCEPTION 'switchboard: data is NULL: give a JSON value (''null''::jsonb for JSON null)'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'data of ` + fn + `';
	END IF;`
	}
	return `
CREATE OR REPLACE FUNCTION ` + n.publishFn + `(room text, data jsonb, type text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
	v_id bigint;
BEGIN` + check("switchboard_publish", "room", name, rule) + noData("switchboard_publish") + `
	IF switchboard_publish.type IS NOT NULL AND switchboard_publish.type !~ '^[a-z][a-z0-9_.:-]{0,31}$' THEN
		RAISE EXCEPTION 'switchboard: type %: want 1 to 32 lower-case letters, digits, _.:- starting with a letter (NULL: "message")', quote_literal(switchboard_publish.type)
			USING ERRCODE = 'invalid_parameter_value', HINT = 'type of switchboard_publish';
	END IF;
	INSERT INTO ` + n.outbox + ` (request)
	VALUES (jsonb_build_object('room', switchboard_publish.room, 'data', switchboard_publish.data)
		|| CASE WHEN switchboard_publish.type IS NULL THEN '{}'::jsonb
		   ELSE jsonb_build_object('type', switchboard_publish.type) END)
	RETURNING id INTO v_id;
	PERFORM pg_notify('` + n.unit + `', '');
	RETURN v_id;
END
$fn$;

CREATE OR REPLACE FUNCTION ` + n.userFn + `(user_id text, data jsonb)
RETURNS bigint
LANGUAGE plpgsql AS $fn$
DECLARE
	v_id bigint;
BEGIN` + check("switchboard_publish_user", "user_id", name, rule) + noData("switchboard_publish_user") + `
	INSERT INTO ` + n.outbox + ` (request)
	VALUES (jsonb_build_object('to', switchboard_publish_user.user_id, 'data', switchboard_publish_user.data))
	RETURNING id INTO v_id;
	PERFORM pg_notify('` + n.unit + `', '');
	RETURN v_id;
END
$fn$;
`
}
