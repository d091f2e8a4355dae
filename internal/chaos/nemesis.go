package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Fault is a kind of fault the nemesis injects.
type Fault string

// Faults. Each is healed before the next one starts.
const (
	BookieKill     Fault = "bookie-kill"      // kill -9 a bookie, restart it
	BookieLose     Fault = "bookie-lose"      // kill -9 a bookie for good; a new, empty one takes its place
	BookiesKillAll Fault = "bookies-kill-all" // kill -9 every bookie at once (a power loss), restart them
	BookiePause    Fault = "bookie-pause"     // SIGSTOP a bookie for longer than its session, SIGCONT
	BookieDiskFull Fault = "bookie-disk-full" // a bookie's disk fills up (it turns read-only), then frees
	BookieLink     Fault = "bookie-link"      // the proxy between the brokers and bookie 0: delay, blackhole, one way, reset
	BrokerKill     Fault = "broker-kill"      // kill -9 a broker, restart it
	BrokerTerm     Fault = "broker-term"      // SIGTERM a broker, restart it
	BrokerPause    Fault = "broker-pause"     // SIGSTOP a broker for longer than its session, SIGCONT
	EtcdLink       Fault = "etcd-link"        // the proxy between a broker and etcd: delay, blackhole, one way, reset
	// EtcdLag: etcd's replies to a broker lag by about 2 s, then its
	// requests stop reaching etcd. Its lease ends while the replies in
	// flight still tell it the lease is alive, so for up to the lag it
	// serves topics whose new owner has recovered their ledgers (as a
	// broker behind a slow network or in a paused VM would); only fencing
	// keeps it from acknowledging writes that the new owner never sees.
	EtcdLag  Fault = "etcd-lag"
	Unload   Fault = "unload"    // unload a topic through the admin API
	S3Outage Fault = "s3-outage" // stop the S3 server, start it again
)

// AllFaults lists every fault kind.
var AllFaults = []Fault{BookieKill, BookieLose, BookiesKillAll, BookiePause, BookieDiskFull, BookieLink,
	BrokerKill, BrokerTerm, BrokerPause, EtcdLink, EtcdLag, Unload, S3Outage}

// event is one injected fault.
type event struct {
	fault  Fault
	detail string
	at     time.Duration // since the run started
	held   time.Duration
}

type nemesis struct {
	c      *cluster
	rng    *rand.Rand
	faults []Fault
	topics []topicSpec
	start  time.Time
	logf   func(string, ...any)
	events []event
	lost   int // bookies lost for good
}

// between returns a duration in [lo, hi].
func (n *nemesis) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(n.rng.Int64N(int64(hi-lo)+1))
}

// run injects faults one at a time: first every kind once, in an order the
// seed shuffles, then kinds drawn at random until the deadline.
func (n *nemesis) run(ctx context.Context, until time.Time) {
	first := slices.Clone(n.faults)
	n.rng.Shuffle(len(first), func(i, j int) { first[i], first[j] = first[j], first[i] })
	for i := 0; (i < len(first) || time.Now().Before(until)) && ctx.Err() == nil; i++ {
		var f Fault
		if i < len(first) {
			f = first[i]
		} else {
			f = n.faults[n.rng.IntN(len(n.faults))]
		}
		if f == BookieLose && n.lost >= 2 {
			f = BookieKill // keep the run's bookie count bounded
		}
		at := time.Since(n.start)
		detail, hold, heal := n.apply(ctx, f)
		n.logf("chaos: %6.1fs %-17s %s (%v)", at.Seconds(), f, detail, hold.Round(100*time.Millisecond))
		sleepCtx(ctx, hold)
		heal()
		n.events = append(n.events, event{fault: f, detail: detail, at: at, held: hold})
		n.c.restartDead()
		sleepCtx(ctx, n.between(time.Second, 3*time.Second))
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-time.After(d):
	case <-ctx.Done():
	}
}

// apply injects one fault and returns what it did, how long to hold it and
// how to heal it.
func (n *nemesis) apply(ctx context.Context, f Fault) (string, time.Duration, func()) {
	c := n.c
	noop := func() {}
	// bookie picks a live bookie; from 1 on with notFirst (bookie 0, behind
	// the link proxy, stays for the link faults).
	bookie := func(notFirst bool) (int, *bookieNode) {
		var live []int
		for i, b := range c.bookies {
			if b.proc.running() && !c.isLost(b.id) && (i > 0 || !notFirst) {
				live = append(live, i)
			}
		}
		i := live[n.rng.IntN(len(live))]
		return i, c.bookies[i]
	}
	broker := func() (int, *brokerNode) {
		i := n.rng.IntN(len(c.brokers))
		return i, c.brokers[i]
	}
	switch f {
	case BookieKill:
		i, b := bookie(false)
		b.proc.kill()
		return fmt.Sprintf("bookie-%d", i), n.between(time.Second, 6*time.Second), func() { b.proc.start() }
	case BookieLose:
		i, b := bookie(true)
		b.proc.kill()
		c.lost = append(c.lost, b.id)
		c.repl.lost(b.id)
		n.lost++
		detail := fmt.Sprintf("bookie-%d gone for good; bookie-%d added", i, len(c.bookies))
		if _, err := c.addBookie(); err != nil {
			detail += fmt.Sprintf(" (start failed: %v)", err)
		}
		return detail, time.Second, noop
	case BookiesKillAll:
		var killed []*bookieNode
		for _, b := range c.bookies {
			if b.proc.running() && !c.isLost(b.id) {
				b.proc.kill()
				killed = append(killed, b)
			}
		}
		return fmt.Sprintf("%d bookies", len(killed)), n.between(time.Second, 4*time.Second), func() {
			for _, b := range killed {
				b.proc.start()
			}
		}
	case BookiePause:
		i, b := bookie(false)
		b.proc.pause()
		return fmt.Sprintf("bookie-%d", i), n.between(sessionTTL+time.Second, sessionTTL+4*time.Second), b.proc.resume
	case BookieDiskFull:
		i, b := bookie(false)
		full := filepath.Join(b.dir, "DISK_FULL")
		os.WriteFile(full, nil, 0o644)
		return fmt.Sprintf("bookie-%d", i), n.between(3*time.Second, 8*time.Second), func() { os.Remove(full) }
	case BookieLink:
		p := c.bookies[0].proxy
		return n.linkFault(p, "brokers -> bookie-0")
	case BrokerKill:
		i, b := broker()
		b.proc.kill()
		return fmt.Sprintf("broker-%d", i), n.between(time.Second, 6*time.Second), func() { b.proc.start() }
	case BrokerTerm:
		i, b := broker()
		b.proc.terminate(30 * time.Second)
		return fmt.Sprintf("broker-%d", i), n.between(time.Second, 4*time.Second), func() { b.proc.start() }
	case BrokerPause:
		i, b := broker()
		b.proc.pause()
		return fmt.Sprintf("broker-%d", i), n.between(sessionTTL+time.Second, sessionTTL+5*time.Second), b.proc.resume
	case EtcdLag:
		// The lag must stay below the lease's TTL less the keep-alive
		// interval (TTL/3), or the broker's own deadline passes first.
		i, b := broker()
		lag := n.between(1800*time.Millisecond, 2200*time.Millisecond)
		b.etcdProxy.set(linkState{delayDown: lag})
		sleepCtx(ctx, lag+time.Second) // replies in flight now renewals made lag ago
		b.etcdProxy.set(linkState{holdUp: true, delayDown: lag})
		return fmt.Sprintf("broker-%d: replies lag %v, then requests stop", i, lag.Round(10*time.Millisecond)),
			n.between(sessionTTL+lag+time.Second, sessionTTL+lag+4*time.Second), func() { b.etcdProxy.set(pass) }
	case EtcdLink:
		i, b := broker()
		return n.linkFault(b.etcdProxy, fmt.Sprintf("broker-%d -> etcd", i))
	case Unload:
		tp := n.topics[n.rng.IntN(len(n.topics))]
		detail := tp.name
		if adm, err := c.admin(); err != nil {
			detail += ": " + err.Error()
		} else {
			uctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			if err := adm.Topics().Unload(uctx, tp.name); err != nil {
				detail += ": " + err.Error()
			}
			cancel()
		}
		return detail, time.Second, noop
	case S3Outage:
		c.s3.Stop()
		return "", n.between(5*time.Second, 12*time.Second), c.s3.Start
	}
	panic("unknown fault " + f)
}

// linkFault puts a proxy in a random fault mode.
func (n *nemesis) linkFault(p *faultProxy, link string) (string, time.Duration, func()) {
	heal := func() { p.set(pass) }
	switch n.rng.IntN(5) {
	case 0:
		d := n.between(100*time.Millisecond, time.Second)
		p.set(linkState{delayUp: d, delayDown: d})
		return fmt.Sprintf("%s: delay %v", link, d), n.between(3*time.Second, 8*time.Second), heal
	case 1:
		p.set(linkState{holdUp: true, holdDown: true})
		return link + ": blackhole", n.between(2*time.Second, sessionTTL+3*time.Second), heal
	case 2:
		p.set(linkState{holdDown: true})
		return link + ": replies dropped (one way)", n.between(2*time.Second, sessionTTL+3*time.Second), heal
	case 3:
		p.set(linkState{holdUp: true})
		return link + ": requests dropped (one way)", n.between(2*time.Second, sessionTTL+3*time.Second), heal
	default:
		p.reset()
		return link + ": connections reset", time.Second, heal
	}
}

// healAll ends every fault: proxies pass, paused processes resume, disks
// free up, S3 is back and every process that should run runs.
func (c *cluster) healAll() {
	for _, b := range c.brokers {
		b.etcdProxy.set(pass)
		b.proc.resume()
	}
	for _, b := range c.bookies {
		if b.proxy != nil {
			b.proxy.set(pass)
		}
		b.proc.resume()
		os.Remove(filepath.Join(b.dir, "DISK_FULL"))
	}
	if !c.s3.Running() {
		c.s3.Start()
	}
	c.restartDead()
}

// restartDead starts every process that ended unless its bookie was lost
// for good (a broker may exit on its own, e.g. when S3 is down at start).
func (c *cluster) restartDead() {
	for _, b := range c.bookies {
		if !c.isLost(b.id) && !b.proc.running() {
			b.proc.start()
		}
	}
	for _, b := range c.brokers {
		if !b.proc.running() {
			b.proc.start()
		}
	}
}

func (c *cluster) isLost(id string) bool {
	for _, l := range c.lost {
		if l == id {
			return true
		}
	}
	return false
}
