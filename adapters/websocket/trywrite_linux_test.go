package websocket

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T, ln net.Listener) (server *net.TCPConn, client net.Conn) {
	t.Helper()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	return s.(*net.TCPConn), client
}

// TestTryWriteAfterClose: TryWriteMany writes to the fd it kept at
// detach, so once the socket is closed it must fail and write nothing,
// even when that fd number now belongs to another connection.
func TestTryWriteAfterClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	server, client := tcpPair(t, ln)
	defer client.Close()
	c := &conn{nc: server, log: slog.New(slog.DiscardHandler), writeTimeout: time.Second, closeGrace: time.Second}
	if !c.detach(func(func([]byte)) error { return nil }, server, newPoller()) {
		t.Fatal("detach failed on a plain TCP socket")
	}

	written, err := c.TryWriteMany([][]byte{[]byte("a"), []byte("b")})
	if err != nil || !written {
		t.Fatalf("TryWriteMany on an open socket: written %v, err %v", written, err)
	}
	want := []byte{0x80 | opText, 3, 'a', '\n', 'b'}
	got := make([]byte, len(want))
	if _, err := io.ReadFull(client, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("client read %q (%v), want %q", got, err, want)
	}

	c.closeSocket()
	// The lowest free fd is reused: the next socket very likely gets the
	// number c kept. Either way nothing may reach it from c.
	server2, client2 := tcpPair(t, ln)
	defer server2.Close()
	defer client2.Close()

	if written, err := c.TryWriteMany([][]byte{[]byte("stale")}); err == nil || written {
		t.Fatalf("TryWriteMany after close: written %v, err %v; want an error", written, err)
	}
	marker := []byte("marker")
	if _, err := server2.Write(marker); err != nil {
		t.Fatal(err)
	}
	got = make([]byte, len(marker))
	if _, err := io.ReadFull(client2, got); err != nil || !bytes.Equal(got, marker) {
		t.Fatalf("the next connection read %q (%v) first, want only its own %q", got, err, marker)
	}
}
