package main

// Cheaper plumbing under paho.mqtt.golang, so the publisher leaves the 2-core box to what it measures.
//
// paho writes every packet with its own write(2) and reads every PUBACK with three read(2)s (fixed header
// byte, length byte, body), about four syscalls per QoS 1 message. `corkedConn` buffers both directions: reads
// go through a bufio.Reader (only paho's incoming goroutine reads), and writes collect in a bufio.Writer
// that a flusher goroutine drains as soon as it is woken, so a burst of publishes leaves in one write(2)
// while a lone publish (a paced run) still goes out at once (a goroutine wake-up later, microseconds).
// `noStore` replaces paho's in-memory store: it only serves resending after a reconnect, which this
// clean-session, no-reconnect client never does.

import (
	"bufio"
	"net"
	"net/url"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

const bufSize = 64 << 10

type corkedConn struct {
	net.Conn
	r    *bufio.Reader
	mu   sync.Mutex
	w    *bufio.Writer
	err  error // the flusher's last error, returned by the next Write
	kick chan struct{}
	done chan struct{}
	once sync.Once
}

func dialCorked(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	raw, err := net.DialTimeout("tcp", uri.Host, o.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	c := &corkedConn{Conn: raw, r: bufio.NewReaderSize(raw, bufSize), w: bufio.NewWriterSize(raw, bufSize),
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	go c.flusher()
	return c, nil
}

func (c *corkedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *corkedConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return 0, c.err
	}
	n, err := c.w.Write(p) // flushes by itself when 64 KiB are waiting
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default: // a flush is already due
	}
	return n, err
}

func (c *corkedConn) flusher() {
	for {
		select {
		case <-c.done:
			return
		case <-c.kick:
		}
		c.mu.Lock()
		if err := c.w.Flush(); err != nil && c.err == nil {
			c.err = err
		}
		c.mu.Unlock()
	}
}

// Close sends what is buffered (paho closes right after writing DISCONNECT), then closes.
func (c *corkedConn) Close() error {
	c.once.Do(func() {
		c.mu.Lock()
		_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
		_ = c.w.Flush()
		c.mu.Unlock()
		close(c.done)
	})
	return c.Conn.Close()
}

type noStore struct{}

func (noStore) Open()                             {}
func (noStore) Put(string, packets.ControlPacket) {}
func (noStore) Get(string) packets.ControlPacket  { return nil }
func (noStore) All() []string                     { return nil }
func (noStore) Del(string)                        {}
func (noStore) Close()                            {}
func (noStore) Reset()                            {}
