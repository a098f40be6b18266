package harness

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Netns is a network namespace joined to the host by a veth pair: a
// worker run in it (Wrap) reaches the host, and a Redis listening on
// HostIP, only over that link, which Cut and Heal take down and up.
type Netns struct {
	Name string
	// HostIP is the host side's address, NSIP the namespace side's, in a
	// /30 of 10.213.0.0/16.
	HostIP, NSIP string
	hostIf       string
}

// NewNetns makes the namespace name, with the /30 number n (0–16383) of
// 10.213.0.0/16. It needs root.
func NewNetns(ctx context.Context, name string, n int) (*Netns, error) {
	if n < 0 || n > 16383 {
		return nil, fmt.Errorf("netns %s: subnet %d is out of range", name, n)
	}
	base := 4 * n
	ns := &Netns{
		Name:   name,
		HostIP: fmt.Sprintf("10.213.%d.%d", base/256, base%256+1),
		NSIP:   fmt.Sprintf("10.213.%d.%d", base/256, base%256+2),
		hostIf: "vx" + fmt.Sprint(n) + "h",
	}
	peer := "vx" + fmt.Sprint(n) + "n"
	steps := [][]string{
		{"netns", "add", name},
		{"link", "add", ns.hostIf, "type", "veth", "peer", "name", peer},
		{"link", "set", peer, "netns", name},
		{"addr", "add", ns.HostIP + "/30", "dev", ns.hostIf},
		{"link", "set", ns.hostIf, "up"},
		{"netns", "exec", name, "ip", "addr", "add", ns.NSIP + "/30", "dev", peer},
		{"netns", "exec", name, "ip", "link", "set", peer, "up"},
		{"netns", "exec", name, "ip", "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := ip(ctx, s...); err != nil {
			ns.Close()
			return nil, err
		}
	}
	return ns, nil
}

// Wrap is the command that runs a program in the namespace.
func (ns *Netns) Wrap() []string { return []string{"ip", "netns", "exec", ns.Name} }

// Cut takes the link down: nothing passes until Heal, and connections
// over it hang rather than fail (a partition, not a refusal).
func (ns *Netns) Cut(ctx context.Context) error { return ip(ctx, "link", "set", ns.hostIf, "down") }

// Heal brings the link back up.
func (ns *Netns) Heal(ctx context.Context) error { return ip(ctx, "link", "set", ns.hostIf, "up") }

// Close removes the namespace and its link.
func (ns *Netns) Close() {
	_ = ip(context.Background(), "link", "del", ns.hostIf)
	_ = ip(context.Background(), "netns", "del", ns.Name)
}

func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
