package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// netPartition is the network the partition fault needs: one edge in a
// network namespace of its own, reached by clients over one veth pair
// and reaching the broker over another, so that taking the second down
// cuts that edge from the broker (packets vanish, connections hang, as
// in a real partition) while its clients still reach it. The broker
// listens on the host end of the second pair, where the other edges and
// the suite reach it too. The suite creates both pairs and the
// namespace and deletes them when done; it needs root and iproute2.
type netPartition struct {
	ns         string
	clientIP   string // the edge's address for clients
	brokerIP   string // the broker's address
	brokerLink string // the namespace's end of the broker pair
}

// nsPrefix names the suite's namespaces: sbchaos-<pid>.
const nsPrefix = "sbchaos-"

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newPartition creates the namespace and both veth pairs.
func newPartition() (*netPartition, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the partition fault needs root (network namespaces); leave it out with --faults")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("the partition fault needs iproute2's ip: %w", err)
	}
	cleanStale()
	pid := os.Getpid()
	k := pid % 120
	p := &netPartition{
		ns:       nsPrefix + strconv.Itoa(pid),
		clientIP: fmt.Sprintf("10.213.%d.2", 2*k), brokerIP: fmt.Sprintf("10.213.%d.1", 2*k+1),
	}
	ch, cn := fmt.Sprintf("sbc%dh", pid), fmt.Sprintf("sbc%dn", pid)
	bh, bn := fmt.Sprintf("sbb%dh", pid), fmt.Sprintf("sbb%dn", pid)
	p.brokerLink = bn
	steps := [][]string{
		{"netns", "add", p.ns},
		{"-n", p.ns, "link", "set", "lo", "up"},
		{"link", "add", ch, "type", "veth", "peer", "name", cn},
		{"link", "set", cn, "netns", p.ns},
		{"addr", "add", fmt.Sprintf("10.213.%d.1/30", 2*k), "dev", ch},
		{"link", "set", ch, "up"},
		{"-n", p.ns, "addr", "add", p.clientIP + "/30", "dev", cn},
		{"-n", p.ns, "link", "set", cn, "up"},
		{"link", "add", bh, "type", "veth", "peer", "name", bn},
		{"link", "set", bn, "netns", p.ns},
		{"addr", "add", p.brokerIP + "/30", "dev", bh},
		{"link", "set", bh, "up"},
		{"-n", p.ns, "addr", "add", fmt.Sprintf("10.213.%d.2/30", 2*k+1), "dev", bn},
		{"-n", p.ns, "link", "set", bn, "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			p.close()
			return nil, err
		}
	}
	return p, nil
}

// cut takes the edge's link to the broker down; heal brings it back.
func (p *netPartition) cut() error  { return ipCmd("-n", p.ns, "link", "set", p.brokerLink, "down") }
func (p *netPartition) heal() error { return ipCmd("-n", p.ns, "link", "set", p.brokerLink, "up") }

// close deletes the namespace, which deletes both pairs with it.
func (p *netPartition) close() {
	_ = ipCmd("netns", "del", p.ns)
}

// wrap returns the command line that runs bin with args in the
// namespace.
func (p *netPartition) wrap(bin string, args []string) (string, []string) {
	return "ip", append([]string{"netns", "exec", p.ns, bin}, args...)
}

// cleanStale deletes namespaces left by suites that were killed.
func cleanStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		pid, ok := strings.CutPrefix(name, nsPrefix)
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(pid); err == nil {
			if _, err := os.Stat("/proc/" + strconv.Itoa(n)); err == nil {
				continue // its suite is still running
			}
		}
		_ = ipCmd("netns", "del", name)
	}
}
