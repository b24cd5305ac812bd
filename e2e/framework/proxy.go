package framework

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// RoundRobin is a TCP load balancer in front of several podguard replicas,
// as a Service is in a cluster: each connection goes to the next backend,
// or to the one after if that one refuses. It passes TLS through, so the API
// server sees whichever certificate the chosen replica serves.
type RoundRobin struct {
	// Addr is host:port to connect to.
	Addr     string
	ln       net.Listener
	backends []string
	next     atomic.Uint64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

// StartRoundRobin listens on a free port of 127.0.0.1 and forwards to
// backends (host:port).
func StartRoundRobin(backends ...string) (*RoundRobin, error) {
	if len(backends) == 0 {
		return nil, errors.New("no backends")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening: %w", err)
	}
	p := &RoundRobin{Addr: ln.Addr().String(), ln: ln, backends: backends, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *RoundRobin) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.forward(c)
		}()
	}
}

func (p *RoundRobin) forward(in net.Conn) {
	defer in.Close()
	first := p.next.Add(1)
	var out net.Conn
	for i := range uint64(len(p.backends)) {
		c, err := net.Dial("tcp", p.backends[(first+i)%uint64(len(p.backends))])
		if err == nil {
			out = c
			break
		}
	}
	if out == nil {
		return
	}
	defer out.Close()
	if !p.track(in, out) {
		return
	}
	defer p.untrack(in, out)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}

func (p *RoundRobin) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range conns {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *RoundRobin) untrack(conns ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range conns {
		delete(p.conns, c)
	}
}

// Close stops listening, cuts every open connection and waits for the
// forwarding goroutines.
func (p *RoundRobin) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}
