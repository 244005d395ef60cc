#!/bin/sh
# Installs the pinned tools of package-lock.json into node_modules here
# (npm ci), unless every one is already there at its pinned version, so
# it is idempotent and takes a fraction of a second when nothing changed.
# Run by make client-tools and by .ci/run's install step.
set -e
cd "$(dirname "$0")"
if node -e '
const pins = require("./package.json").devDependencies;
for (const name of Object.keys(pins)) {
  if (require("./node_modules/" + name + "/package.json").version !== pins[name]) process.exit(1);
}' 2>/dev/null; then
	exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
