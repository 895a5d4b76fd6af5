// Package faultproxy is a loopback TCP proxy for tests that need a database
// connection to fail at an exact moment: right after a COMMIT was sent and
// before its answer arrives (the only way to produce a real ambiguous
// commit on demand), right before a COMMIT would be sent (the server never
// receives it, and may or may not notice that the client has gone), or at
// an arbitrary moment in a fault-injection run.
//
// It listens on 127.0.0.1 and forwards to one target address on this
// machine. Every goroutine it starts ends when the test does.
package faultproxy

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Proxy forwards connections from Addr to a target. It is safe for
// concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	conns   map[*link]struct{}
	trigger []byte  // armed pattern, nil when disarmed
	kind    cutKind // what the armed trigger does
	cuts    [numCutKinds]int
	wg      sync.WaitGroup
}

// cutKind is what an armed trigger does to the connection it fires on.
type cutKind uint8

const (
	cutAfter  cutKind = iota // forward the request, swallow the answer, close both sides
	cutBefore                // drop the request, close both sides
	partition                // drop the request, close the client's side only
	numCutKinds
)

// link states, set by the client-to-server goroutine when a trigger fires
// and read by the server-to-client one.
const (
	forwarding int32 = iota
	swallowing       // the next answer is dropped, then both sides closed
	discarding       // the client has gone; the server's output is dropped until it closes
)

// link is one proxied connection.
type link struct {
	client, server net.Conn
	state          atomic.Int32
	running        atomic.Int32 // its goroutines still running
	once           sync.Once
}

func (l *link) close() {
	l.once.Do(func() {
		l.client.Close()
		l.server.Close()
	})
}

// Start starts a proxy to target (host:port) and stops it, closing every
// connection, when tb ends.
func Start(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("faultproxy: listen: %v", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.close)
	return p
}

// Addr returns the host:port clients should dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Host returns the proxy's host, and Port its port, for connection strings
// that take them apart.
func (p *Proxy) Host() string { h, _, _ := net.SplitHostPort(p.Addr()); return h }

// Port returns the proxy's port.
func (p *Proxy) Port() string { _, port, _ := net.SplitHostPort(p.Addr()); return port }

// CutAfter arms the proxy: the next chunk a client sends that contains
// pattern is forwarded to the server, then the server's answer is
// swallowed and both sides of that connection are closed. The client sees
// the connection fail only once the server has answered, so by then the
// server has acted on the request; the client never learns the outcome.
// The proxy disarms after one cut. Arming replaces a trigger armed before
// and not yet fired.
func (p *Proxy) CutAfter(pattern []byte) { p.arm(pattern, cutAfter) }

// CutBefore arms the proxy: the next chunk a client sends that contains
// pattern is not forwarded, and both sides of that connection are closed
// at once. The server never receives the request and sees its client go
// away, as when a client process dies; the client sees the connection
// fail. The proxy disarms after one cut.
func (p *Proxy) CutBefore(pattern []byte) { p.arm(pattern, cutBefore) }

// PartitionBefore arms the proxy: the next chunk a client sends that
// contains pattern is not forwarded, and only the client's side of that
// connection is closed. The server never receives the request and is not
// told that the client has gone, as after a network partition: its side
// stays open, a transaction on it stays open with its locks, and whatever
// it sends is dropped, until the server closes the connection (say,
// because it was told to end that session), [Proxy.DropAll] is called or
// the proxy stops. The proxy disarms after one cut.
func (p *Proxy) PartitionBefore(pattern []byte) { p.arm(pattern, partition) }

func (p *Proxy) arm(pattern []byte, kind cutKind) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trigger = bytes.Clone(pattern)
	p.kind = kind
}

// Cuts returns how many connections CutAfter, CutBefore and
// PartitionBefore have cut, together.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.cuts {
		n += c
	}
	return n
}

// CutsAfter returns how many connections CutAfter has cut, and CutsBefore
// how many CutBefore and PartitionBefore have.
func (p *Proxy) CutsAfter() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts[cutAfter]
}

// CutsBefore returns how many connections CutBefore and PartitionBefore
// have cut.
func (p *Proxy) CutsBefore() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts[cutBefore] + p.cuts[partition]
}

// DropAll closes every open connection now, those left half-open by
// PartitionBefore included, and returns how many there were.
func (p *Proxy) DropAll() int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.close()
	}
	return len(links)
}

func (p *Proxy) close() {
	p.ln.Close()
	p.DropAll()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // listener closed
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		l := &link{client: c, server: s}
		l.running.Store(2)
		p.mu.Lock()
		p.conns[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.clientToServer(l)
		go p.serverToClient(l)
	}
}

// clientToServer forwards requests and watches for the armed pattern.
func (p *Proxy) clientToServer(l *link) {
	defer p.wg.Done()
	defer p.forget(l)
	buf := make([]byte, 32<<10)
	for {
		n, err := l.client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			fire, kind := p.take(chunk)
			switch {
			case fire && kind == cutBefore:
				l.close()
				return
			case fire && kind == partition:
				// Marked before the client's side closes, so that the
				// other goroutine drops what the server still sends.
				l.state.Store(discarding)
				l.client.Close()
				return
			case fire:
				// Marked before the write, so no part of the answer can
				// reach the client.
				l.state.Store(swallowing)
			}
			if _, werr := l.server.Write(chunk); werr != nil {
				l.close()
				return
			}
			if fire {
				return // the reader swallows the answer, then closes both sides
			}
		}
		if err != nil {
			if l.state.Load() != discarding {
				l.close()
			}
			return
		}
	}
}

// serverToClient forwards answers until the link is cut; after CutAfter it
// waits for the server's answer to arrive, drops it, and closes; after
// PartitionBefore it drops everything until the server closes.
func (p *Proxy) serverToClient(l *link) {
	defer p.wg.Done()
	defer p.forget(l)
	buf := make([]byte, 32<<10)
	for {
		n, err := l.server.Read(buf)
		switch l.state.Load() {
		case swallowing:
			l.close() // the answer to the cut request is swallowed
			return
		case discarding:
			if err != nil {
				l.close()
				return
			}
			continue
		}
		if n > 0 {
			if _, werr := l.client.Write(buf[:n]); werr != nil {
				if l.state.Load() == discarding {
					continue // the client's side was closed by a partition meanwhile
				}
				l.close()
				return
			}
		}
		if err != nil {
			l.close()
			return
		}
	}
}

// take reports whether chunk fires the armed trigger, disarming it, and
// what the trigger does.
func (p *Proxy) take(chunk []byte) (bool, cutKind) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.trigger == nil || !bytes.Contains(chunk, p.trigger) {
		return false, 0
	}
	p.trigger = nil
	p.cuts[p.kind]++
	return true, p.kind
}

// forget removes l from the open links once both of its goroutines have
// ended.
func (p *Proxy) forget(l *link) {
	if l.running.Add(-1) > 0 {
		return
	}
	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
}
