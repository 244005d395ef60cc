// Package config turns flags and SWITCHBOARD_* environment variables into
// the edge's typed configuration. Flags win over the environment; every
// setting has a documented default; a bad value is one error line naming
// the flag, the variable and the fix.
package config
