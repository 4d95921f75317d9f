// mqttload is the ingest benchmark's MQTT publisher: a dumb, fast QoS 0/1 load generator.
//
// Python's paho client tops out near 8,600 msg/s at QoS 1 on a 2-core box, below what the bridge is
// meant to ingest, so `make bench-ingest` publishes with this instead. It generates single-reading
// JSON or SenML packs itself (so a paced run can stamp each message with its send time), or replays
// pre-built frames (Sparkplug B, the anchors' payloads) from a file. Payloads of a throughput run are
// built before the clock starts. A sliding window of un-acked QoS 1 messages bounds what is in flight;
// every PUBACK is counted, and one JSON report goes to stdout at the end:
//
//	{"sent":…, "acked":…, "errors":…, "t_first_pub":…, "t_last_pub":…, "t_done":…, …}
//
// It runs on one P with buffered socket I/O (conn.go): ~10 µs of CPU per QoS 1 message at full speed
// on the 2-core box, so it takes little from what it measures.
//
// Times are Unix seconds (float). Message i goes to topic index k = i % topics, round r = i / topics;
// its timestamp is ts-start + r*ts-step, or, with -ts-start 0, the time it is sent (strictly increasing
// per topic, so (sensor, ts) never repeats). Frames are [u16 BE topic length][topic][u32 BE payload
// length][payload], repeated. With -dump K the first K messages are printed (JSON lines) and nothing is sent.
package main

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

type options struct {
	broker     string
	clientID   string
	qos        int
	n          int
	topics     int
	topicFmt   string
	format     string
	readings   int
	senmlName  string
	fieldFmt   string
	senmlUnit  string
	framesPath string
	tsStart    float64
	tsStep     float64
	rate       float64
	window     int
	conns      int
	maxSeconds float64
	dump       int
	corked     bool
	procs      int
}

type message struct {
	topic   string
	payload []byte
}

type report struct {
	Sent            int64   `json:"sent"`
	Acked           int64   `json:"acked"`
	Errors          int64   `json:"errors"`
	FirstError      string  `json:"first_error,omitempty"`
	TFirstPub       float64 `json:"t_first_pub"`
	TLastPub        float64 `json:"t_last_pub"`
	TDone           float64 `json:"t_done"`
	Rate            float64 `json:"rate"`
	TargetRate      float64 `json:"target_rate"`
	AvgPayloadBytes float64 `json:"avg_payload_bytes"`
	CPUSeconds      float64 `json:"cpu_s"`
	Conns           int     `json:"conns"`
	Corked          bool    `json:"corked"`
	Window          int     `json:"window"`
	TimedOut        bool    `json:"timed_out"`
}

func main() {
	o := parseFlags()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "mqttload:", err)
		os.Exit(1)
	}
}

func parseFlags() options {
	var o options
	flag.StringVar(&o.broker, "broker", "tcp://127.0.0.1:1883", "broker URL")
	flag.StringVar(&o.clientID, "client-id", fmt.Sprintf("mqttload-%d", os.Getpid()), "client id (a suffix -<conn> is added)")
	flag.IntVar(&o.qos, "qos", 1, "0 or 1")
	flag.IntVar(&o.n, "n", 100000, "messages to publish (frames: 0 = every frame)")
	flag.IntVar(&o.topics, "topics", 100, "topics (devices) the generated messages rotate over")
	flag.StringVar(&o.topicFmt, "topic", "bench/d%d/telemetry", "topic template; %d is the topic index")
	flag.StringVar(&o.format, "format", "json", "json (one reading), senml (a pack of -readings) or frames")
	flag.IntVar(&o.readings, "readings", 20, "senml: records per pack")
	flag.StringVar(&o.senmlName, "senml-bn", "urn:dev:dtwin:d%d:", "senml: base name template; %d is the topic index")
	flag.StringVar(&o.fieldFmt, "field", "f%02d", "senml: record name template; %d is the record index (json: the key is v)")
	flag.StringVar(&o.senmlUnit, "senml-unit", "Cel", "senml: unit of every record (empty: none)")
	flag.StringVar(&o.framesPath, "frames", "-", "frames: file of pre-built messages (- is stdin)")
	flag.Float64Var(&o.tsStart, "ts-start", 0, "timestamp of round 0, Unix seconds; 0 = stamp each message when it is sent")
	flag.Float64Var(&o.tsStep, "ts-step", 1, "seconds between rounds (one message per topic each)")
	flag.Float64Var(&o.rate, "rate", 0, "target messages per second over all connections; 0 = as fast as acks allow")
	flag.IntVar(&o.window, "window", 1000, "QoS 1: most un-acked messages per connection")
	flag.IntVar(&o.conns, "conns", 1, "connections; topic k is always published on connection k % conns")
	flag.Float64Var(&o.maxSeconds, "max-seconds", 300, "give up after this long")
	flag.IntVar(&o.dump, "dump", 0, "print the first K messages as JSON lines and exit")
	flag.BoolVar(&o.corked, "corked", true, "buffer socket reads/writes and skip paho's store (see conn.go)")
	// One P: idle Ps spin looking for work, which on a 2-core box takes CPU from what is being measured
	// (measured: ~10 µs of CPU per QoS 1 message with one, ~20 with two).
	flag.IntVar(&o.procs, "procs", 1, "GOMAXPROCS (raise it with -conns)")
	flag.Parse()
	return o
}

func run(o options) error {
	runtime.GOMAXPROCS(o.procs)
	if o.qos < 0 || o.qos > 1 || o.window < 1 || o.conns < 1 || o.topics < 1 || o.n < 0 {
		return errors.New("need -qos 0|1, -window >= 1, -conns >= 1, -topics >= 1, -n >= 0")
	}
	live := o.tsStart == 0 && o.format != "frames"
	var msgs []message
	switch {
	case o.format == "frames":
		frames, err := readFrames(o.framesPath)
		if err != nil {
			return err
		}
		if o.n > len(frames) {
			return fmt.Errorf("-n %d but only %d frames", o.n, len(frames))
		}
		if o.n == 0 {
			o.n = len(frames)
		}
		msgs = frames[:o.n]
	case o.format != "json" && o.format != "senml":
		return fmt.Errorf("unknown -format %q", o.format)
	case !live || o.dump > 0:
		g := newGenerator(o)
		count := o.n
		if o.dump > 0 && o.dump < count {
			count = o.dump
		}
		msgs = make([]message, count)
		for i := range msgs {
			msgs[i] = g.message(i, 0)
		}
	}
	if o.dump > 0 {
		return dump(msgs, o.dump)
	}
	return publish(o, msgs, live)
}

func dump(msgs []message, k int) error {
	enc := json.NewEncoder(os.Stdout)
	for i := 0; i < k && i < len(msgs); i++ {
		rec := map[string]string{"topic": msgs[i].topic, "payload_b64": base64.StdEncoding.EncodeToString(msgs[i].payload)}
		if err := enc.Encode(rec); err != nil {
			return err
		}
	}
	return nil
}

func readFrames(path string) ([]message, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	br := bufio.NewReaderSize(r, 1<<20)
	var out []message
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(br, hdr[:2]); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("frame %d: %w", len(out), err)
		}
		topic := make([]byte, binary.BigEndian.Uint16(hdr[:2]))
		if _, err := io.ReadFull(br, topic); err != nil {
			return nil, fmt.Errorf("frame %d topic: %w", len(out), err)
		}
		if _, err := io.ReadFull(br, hdr[:4]); err != nil {
			return nil, fmt.Errorf("frame %d length: %w", len(out), err)
		}
		payload := make([]byte, binary.BigEndian.Uint32(hdr[:4]))
		if _, err := io.ReadFull(br, payload); err != nil {
			return nil, fmt.Errorf("frame %d payload: %w", len(out), err)
		}
		out = append(out, message{string(topic), payload})
	}
}

// generator builds message i: JSON `{"ts":<s.µs>,"v":<value>}` or a SenML pack of `readings` records.
type generator struct {
	o      options
	topics []string
	bases  []string
	fields []string
}

func newGenerator(o options) *generator {
	g := &generator{o: o, topics: make([]string, o.topics), bases: make([]string, o.topics)}
	for k := range g.topics {
		g.topics[k] = fmt.Sprintf(o.topicFmt, k)
		g.bases[k] = fmt.Sprintf(o.senmlName, k)
	}
	for j := 0; j < o.readings; j++ {
		g.fields = append(g.fields, fmt.Sprintf(o.fieldFmt, j))
	}
	return g
}

// value is deterministic and inside any sane validRange: 15.00 .. 24.99.
func value(i, j int) float64 { return 15 + float64(((i*20+j)*7919)%1000)/100 }

// message i; `tsMicros` overrides the scheduled timestamp when non-zero (live stamping).
func (g *generator) message(i int, tsMicros int64) message {
	k := i % g.o.topics
	if tsMicros == 0 {
		r := i / g.o.topics
		tsMicros = int64((g.o.tsStart+float64(r)*g.o.tsStep)*1e6 + 0.5)
	}
	ts := strconv.FormatInt(tsMicros/1e6, 10) + "." + fmt.Sprintf("%06d", tsMicros%1e6)
	b := make([]byte, 0, 64+g.o.readings*40)
	if g.o.format == "json" {
		b = append(b, `{"ts":`...)
		b = append(b, ts...)
		b = append(b, `,"v":`...)
		b = strconv.AppendFloat(b, value(i, 0), 'f', 2, 64)
		b = append(b, '}')
		return message{g.topics[k], b}
	}
	b = append(b, '[')
	for j, name := range g.fields {
		if j > 0 {
			b = append(b, ',')
		}
		b = append(b, '{')
		if j == 0 {
			b = append(b, `"bn":`...)
			b = strconv.AppendQuote(b, g.bases[k])
			b = append(b, `,"bt":`...)
			b = append(b, ts...)
			b = append(b, ',')
		}
		b = append(b, `"n":`...)
		b = strconv.AppendQuote(b, name)
		if g.o.senmlUnit != "" {
			b = append(b, `,"u":`...)
			b = strconv.AppendQuote(b, g.o.senmlUnit)
		}
		b = append(b, `,"v":`...)
		b = strconv.AppendFloat(b, value(i, j), 'f', 2, 64)
		b = append(b, '}')
	}
	b = append(b, ']')
	return message{g.topics[k], b}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

type counters struct {
	sent, acked, errors, bytes atomic.Int64
	firstErr                   sync.Once
	firstErrText               string
}

func (c *counters) fail(err error) {
	c.errors.Add(1)
	c.firstErr.Do(func() { c.firstErrText = err.Error() })
}

func connect(o options, c int) (mqtt.Client, error) {
	opts := mqtt.NewClientOptions().AddBroker(o.broker).SetClientID(fmt.Sprintf("%s-%d", o.clientID, c))
	opts.SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetConnectRetry(false)
	opts.SetKeepAlive(60 * time.Second).SetOrderMatters(false).SetConnectTimeout(10 * time.Second)
	if o.corked {
		opts.SetCustomOpenConnectionFn(dialCorked).SetStore(noStore{})
	}
	cl := mqtt.NewClient(opts)
	tok := cl.Connect()
	if !tok.WaitTimeout(15 * time.Second) {
		return nil, errors.New("no CONNACK within 15 s")
	}
	return cl, tok.Error()
}

func publish(o options, msgs []message, live bool) error {
	clients := make([]mqtt.Client, o.conns)
	for c := range clients {
		cl, err := connect(o, c)
		if err != nil {
			return fmt.Errorf("connect %s: %w", o.broker, err)
		}
		clients[c] = cl
	}
	var g *generator
	if live {
		g = newGenerator(o)
	}
	var cnt counters
	deadline := time.Now().Add(time.Duration(o.maxSeconds * float64(time.Second)))
	perConnRate := o.rate / float64(o.conns)
	cpu0 := cpuSeconds()
	tFirst := time.Now()
	var lastPub atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			last := pump(o, clients[c], c, msgs, g, perConnRate, deadline, &cnt)
			for {
				prev := lastPub.Load()
				if last <= prev || lastPub.CompareAndSwap(prev, last) {
					break
				}
			}
		}(c)
	}
	wg.Wait()
	tDone := time.Now()
	cpu := cpuSeconds() - cpu0
	for _, cl := range clients {
		cl.Disconnect(250)
	}
	sent := cnt.sent.Load()
	rep := report{
		Sent: sent, Acked: cnt.acked.Load(), Errors: cnt.errors.Load(), FirstError: cnt.firstErrText,
		TFirstPub: unixSeconds(tFirst), TLastPub: float64(lastPub.Load()) / 1e9, TDone: unixSeconds(tDone),
		Rate: float64(sent) / tDone.Sub(tFirst).Seconds(), TargetRate: o.rate, CPUSeconds: cpu,
		Conns: o.conns, Corked: o.corked, Window: o.window, TimedOut: time.Now().After(deadline),
	}
	if sent > 0 {
		rep.AvgPayloadBytes = float64(cnt.bytes.Load()) / float64(sent)
	}
	if o.qos == 0 {
		rep.Acked = sent - rep.Errors // QoS 0 has no PUBACK: "acked" means written without error
	}
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// pump publishes the messages of connection c (topic index % conns == c), paced when rate > 0,
// with at most o.window un-acked; returns the Unix nanoseconds of its last publish.
func pump(o options, cl mqtt.Client, c int, msgs []message, g *generator, rate float64, deadline time.Time,
	cnt *counters) int64 {
	inflight := make(chan mqtt.Token, o.window)
	reaped := make(chan struct{})
	go func() { // acks arrive in order on one connection, so waiting in order costs nothing
		defer close(reaped)
		for tok := range inflight {
			if !tok.WaitTimeout(time.Until(deadline)) {
				cnt.fail(errors.New("no PUBACK before the deadline"))
				continue
			}
			if err := tok.Error(); err != nil {
				cnt.fail(err)
				continue
			}
			cnt.acked.Add(1)
		}
	}()
	lastTs := make(map[int]int64) // live stamping: per topic, strictly increasing µs
	start := time.Now()
	var last int64
	sentHere := 0
	for i := 0; i < o.n; i++ {
		if (i%o.topics)%o.conns != c {
			continue
		}
		if rate > 0 {
			// Sleep only when 2 ms ahead: a wake-up per message would cost more CPU than the publish itself.
			if wait := time.Until(start.Add(time.Duration(float64(sentHere) / rate * float64(time.Second)))); wait > 2*time.Millisecond {
				time.Sleep(wait)
			}
		}
		if time.Now().After(deadline) {
			break
		}
		var m message
		if g != nil {
			k := i % o.topics
			ts := time.Now().UnixMicro()
			if ts <= lastTs[k] {
				ts = lastTs[k] + 1
			}
			lastTs[k] = ts
			m = g.message(i, ts)
		} else {
			m = msgs[i]
		}
		tok := cl.Publish(m.topic, byte(o.qos), false, m.payload)
		last = time.Now().UnixNano()
		sentHere++
		cnt.sent.Add(1)
		cnt.bytes.Add(int64(len(m.payload)))
		if o.qos == 1 {
			inflight <- tok // blocks while the window is full
		} else if tok.Error() != nil {
			cnt.fail(tok.Error())
		}
	}
	close(inflight)
	<-reaped
	return last
}
