package faultproxy

import (
	"bufio"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// lineServer answers each line with "ok <line>" and counts what it received.
func lineServer(t *testing.T) (addr string, received *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	received = new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewScanner(c)
				for r.Scan() {
					received.Add(1)
					if _, err := c.Write([]byte("ok " + r.Text() + "\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), received
}

func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, line string) (string, error) {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	s, err := r.ReadString('\n')
	return strings.TrimSpace(s), err
}

func TestCutAfterDeliversTheRequestAndSwallowsTheAnswer(t *testing.T) {
	target, received := lineServer(t)
	p := Start(t, target)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if got, err := roundTrip(t, c, r, "BEGIN"); err != nil || got != "ok BEGIN" {
		t.Fatalf("before arming: %q, %v", got, err)
	}
	p.CutAfter([]byte("COMMIT"))
	if got, err := roundTrip(t, c, r, "COMMIT"); err == nil {
		t.Fatalf("after the cut the client read %q; want a closed connection", got)
	}
	if received.Load() != 2 {
		t.Errorf("server received %d lines, want 2: the cut request must reach it", received.Load())
	}
	if p.Cuts() != 1 {
		t.Errorf("Cuts = %d, want 1", p.Cuts())
	}
	// Disarmed: a new connection works.
	c2, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, err := roundTrip(t, c2, bufio.NewReader(c2), "COMMIT"); err != nil || got != "ok COMMIT" {
		t.Fatalf("after one cut the proxy must be disarmed: %q, %v", got, err)
	}
}

func TestDropAll(t *testing.T) {
	target, _ := lineServer(t)
	p := Start(t, target)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := roundTrip(t, c, r, "x"); err != nil {
		t.Fatal(err)
	}
	if n := p.DropAll(); n != 1 {
		t.Errorf("DropAll closed %d connections, want 1", n)
	}
	if got, err := roundTrip(t, c, r, "y"); err == nil {
		t.Fatalf("read %q after DropAll; want an error", got)
	}
}

// lingeringServer answers each line as lineServer does, counts what it
// received, and reports on closed when a connection's client went away.
func lingeringServer(t *testing.T) (addr string, received *atomic.Int64, closed chan struct{}, conns chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	received = new(atomic.Int64)
	closed = make(chan struct{}, 8)
	conns = make(chan net.Conn, 8)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns <- c
			go func() {
				defer c.Close()
				r := bufio.NewScanner(c)
				for r.Scan() {
					received.Add(1)
					if _, err := c.Write([]byte("ok " + r.Text() + "\n")); err != nil {
						break
					}
				}
				closed <- struct{}{}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), received, closed, conns
}

func TestCutBeforeDropsTheRequestAndClosesBothSides(t *testing.T) {
	target, received, closed, _ := lingeringServer(t)
	p := Start(t, target)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if got, err := roundTrip(t, c, r, "BEGIN"); err != nil || got != "ok BEGIN" {
		t.Fatalf("before arming: %q, %v", got, err)
	}
	p.CutBefore([]byte("COMMIT"))
	if got, err := roundTrip(t, c, r, "COMMIT"); err == nil {
		t.Fatalf("after the cut the client read %q; want a closed connection", got)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("the server's side was not closed")
	}
	if received.Load() != 1 {
		t.Errorf("server received %d lines, want 1: the cut request must not reach it", received.Load())
	}
	if p.Cuts() != 1 || p.CutsBefore() != 1 || p.CutsAfter() != 0 {
		t.Errorf("Cuts = %d, CutsBefore = %d, CutsAfter = %d; want 1, 1, 0", p.Cuts(), p.CutsBefore(), p.CutsAfter())
	}
}

func TestPartitionBeforeLeavesTheServerSideOpen(t *testing.T) {
	target, received, closed, conns := lingeringServer(t)
	p := Start(t, target)
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if got, err := roundTrip(t, c, r, "BEGIN"); err != nil || got != "ok BEGIN" {
		t.Fatalf("before arming: %q, %v", got, err)
	}
	server := <-conns
	p.PartitionBefore([]byte("COMMIT"))
	if got, err := roundTrip(t, c, r, "COMMIT"); err == nil {
		t.Fatalf("after the cut the client read %q; want a closed connection", got)
	}
	select {
	case <-closed:
		t.Fatal("the server's side was closed; a partition must leave it open")
	case <-time.After(100 * time.Millisecond):
	}
	if received.Load() != 1 {
		t.Errorf("server received %d lines, want 1: the cut request must not reach it", received.Load())
	}
	// What the server sends now goes nowhere, and does not close its side.
	if _, err := server.Write([]byte("late\n")); err != nil {
		t.Fatalf("the server could not write to its open side: %v", err)
	}
	if n := p.DropAll(); n != 1 {
		t.Errorf("DropAll closed %d connections, want the half-open one", n)
	}
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("DropAll did not close the server's side")
	}
	if p.CutsBefore() != 1 {
		t.Errorf("CutsBefore = %d, want 1", p.CutsBefore())
	}
}
