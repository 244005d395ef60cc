package postgres

// LogSchemaVersion is the log's last migration, for tests outside the
// package.
var LogSchemaVersion = migrations[len(migrations)-1].version
