package config

import (
	"flag"
	"fmt"
	"strings"
)

// Reference returns docs/configuration.md: every flag with its
// environment variable, default and meaning, generated from the flag
// definitions themselves (a test keeps the file in step).
func Reference() string {
	var c Config
	fs := newFlagSet(&c)
	var b strings.Builder
	b.WriteString(`# Configuration reference

<!-- Generated from edge/config by ` + "`go test ./edge/config -run TestReference -update`" + `; do not edit by hand. -->

Every setting of the ` + "`switchboard`" + ` edge is a flag and an environment
variable; flags win over the environment. ` + "`switchboard --help`" + ` prints the same
list. A bad value stops the edge at start with one line naming the flag, the
variable and the fix (exit status 2). Durations use Go syntax (` + "`500ms`, `25s`, `1m`" + `).
A number whose default is not 0 refuses 0, which the packages would read
as "the default": give the value you want (negative where the meaning
says it disables).
The [README](../README.md#configuration) lists the settings to know first;
this page has all of them. [security.md](security.md) has the production
checklist.

| Flag | Environment variable | Default | Meaning |
|---|---|---|---|
`)
	fs.VisitAll(func(f *flag.Flag) {
		def := f.DefValue
		if def == "" {
			def = "empty"
		} else {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `--%s` | `%s` | %s | %s |\n", f.Name, EnvName(f.Name), def, strings.ReplaceAll(f.Usage, "|", `\|`))
	})
	return b.String()
}
