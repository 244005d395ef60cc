package config

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDeployEnvFiles: every broker env file of docker-compose.yml
// (docs/deploy/broker-<name>.env) is a configuration the edge accepts,
// naming the broker its file name says.
func TestDeployEnvFiles(t *testing.T) {
	files, err := filepath.Glob("../../docs/deploy/broker-*.env")
	if err != nil {
		t.Fatal(err)
	}
	for broker := range defaultBrokerURL { // every broker but memory
		if !slices.Contains(files, "../../docs/deploy/broker-"+broker+".env") {
			t.Errorf("no docs/deploy/broker-%s.env: SWITCHBOARD_BROKER=%s docker compose up would stop", broker, broker)
		}
	}
	for _, file := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(file), "broker-"), ".env")
		t.Run(name, func(t *testing.T) {
			env := readEnvFile(t, file)
			c, err := Load(nil, func(k string) string { return env[k] }, io.Discard)
			if err != nil {
				t.Fatalf("%s: the edge refuses it: %v", file, err)
			}
			if c.Broker.Name != name || c.Broker.URL == "" {
				t.Fatalf("%s: broker %q at %q, want %q with a URL", file, c.Broker.Name, c.Broker.URL, name)
			}
		})
	}
}

// readEnvFile reads KEY=VALUE lines, skipping comments and blank lines,
// as Compose's env_file does for these simple files.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", path, line)
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return env
}
