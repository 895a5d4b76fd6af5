// Package faultproxy is a loopback TCP proxy for tests that need a database
// connection to fail at an exact moment: right after a COMMIT was sent and
// before its answer arrives (the only way to produce a real ambiguous
// commit on demand), or at an arbitrary moment in a fault-injection run.
//
// It listens on 127.0.0.1 and forwards to one target address on this
// machine. Every goroutine it starts ends when the test does.
package faultproxy

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// Proxy forwards connections from Addr to a target. It is safe for
// concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	conns   map[*link]struct{}
	trigger []byte // armed pattern, nil when disarmed
	cuts    int
	wg      sync.WaitGroup
}

// link is one proxied connection.
type link struct {
	client, server net.Conn
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
// The proxy disarms after one cut.
func (p *Proxy) CutAfter(pattern []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trigger = bytes.Clone(pattern)
}

// Cuts returns how many connections CutAfter has cut.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// DropAll closes every open connection now and returns how many there were.
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
		p.mu.Lock()
		p.conns[l] = struct{}{}
		p.mu.Unlock()
		cut := make(chan struct{})
		p.wg.Add(2)
		go p.clientToServer(l, cut)
		go p.serverToClient(l, cut)
	}
}

// clientToServer forwards requests and watches for the armed pattern.
func (p *Proxy) clientToServer(l *link, cut chan struct{}) {
	defer p.wg.Done()
	defer p.forget(l)
	buf := make([]byte, 32<<10)
	for {
		n, err := l.client.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			fire := p.take(chunk)
			if fire {
				// Marked before the write, so no part of the answer can
				// reach the client.
				close(cut)
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
			l.close()
			return
		}
	}
}

// serverToClient forwards answers until the link is cut; after a cut it
// waits for the server's answer to arrive, drops it, and closes.
func (p *Proxy) serverToClient(l *link, cut chan struct{}) {
	defer p.wg.Done()
	defer p.forget(l)
	buf := make([]byte, 32<<10)
	for {
		n, err := l.server.Read(buf)
		select {
		case <-cut:
			l.close() // the answer to the cut request is swallowed
			return
		default:
		}
		if n > 0 {
			if _, werr := l.client.Write(buf[:n]); werr != nil {
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

// take reports whether chunk fires the armed trigger, disarming it.
func (p *Proxy) take(chunk []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.trigger == nil || !bytes.Contains(chunk, p.trigger) {
		return false
	}
	p.trigger = nil
	p.cuts++
	return true
}

func (p *Proxy) forget(l *link) {
	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
}
