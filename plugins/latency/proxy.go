package latency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// dialTimeout bounds how long a client waits for the upstream to accept
	// before the proxy gives up and closes the client connection.
	dialTimeout = 5 * time.Second

	// closeFlushTimeout bounds how long Close keeps writing chunks that were
	// already read. Close promises not to lose data, but a peer that stops
	// reading must not be able to hold Close (and the revert behind it) forever.
	closeFlushTimeout = 10 * time.Second

	// chunkSize is the largest read from one side in one go.
	chunkSize = 32 << 10

	// queueChunks is how many chunks one direction can hold between its reader
	// and its writer. A queue lets a delayed stream stay pipelined, as on a
	// slow real link, instead of carrying one chunk per delay period. It also
	// bounds the memory a stalled direction can take (queueChunks*chunkSize).
	queueChunks = 64
)

// Stats are counters of a Proxy since Listen.
type Stats struct {
	// Accepted counts client connections accepted.
	Accepted int64
	// BytesToUpstream counts bytes written to upstreams (client→upstream).
	BytesToUpstream int64
	// BytesToClient counts bytes written to clients (upstream→client).
	BytesToClient int64
	// BytesHeld is the number of bytes read from either side and not yet
	// written: what the delay is holding back right now.
	BytesHeld int64
	// Open is the number of client connections held now.
	Open int64
	// Delayed counts chunks written after a delay; Late counts those of
	// them written more than LateAfter past their due time (arrival plus
	// delay), and MaxLate is the latest any was. They tell the proxy's own
	// exactness apart from what a client measures, which adds its own and
	// its server's wake-ups.
	Delayed, Late int64
	MaxLate       time.Duration
	// DelayedBytes counts the bytes of the Delayed chunks.
	DelayedBytes int64
	// Refused counts client connections closed at once because the proxy
	// held Limits.Connections already.
	Refused int64
	// LoopsRefused counts dials refused because the upstream resolved to
	// the proxy's own listen address: traffic would have looped.
	LoopsRefused int64
	// ReadPauses counts the times a side stopped being read because its
	// connection, or the proxy as a whole, held as many bytes as allowed.
	ReadPauses int64
}

// Proxy forwards TCP connections from a listen address to an upstream and can delay every chunk in both directions.
type Proxy struct {
	ln       net.Listener
	upstream string
	// route names the upstream of one client connection and dials it
	// (intercept mode: the connection's original destination, from inside
	// the network namespace, marked so the rules let it pass).
	route Route
	// guard is deferred first in every goroutine the proxy starts
	// (sdk.Guard under a served plugin); it never is nil.
	guard func()

	mu      sync.Mutex
	shape   Shape
	changed chan struct{} // closed and replaced by SetShape, wakes waiting writers
	closed  bool
	pairs   map[*pair]struct{}
	limits  Limits
	open    int           // client connections held, dialing ones included
	freed   chan struct{} // closed and replaced when held bytes are freed, wakes paused readers

	// closing is closed by Close. Writers then deliver what they hold at
	// once, and the accept loop and pending dials stop.
	closing   chan struct{}
	closeOnce sync.Once
	closeErr  error

	wg sync.WaitGroup // every goroutine the proxy starts

	accepted  atomic.Int64
	toUp      atomic.Int64
	toClient  atomic.Int64
	held      atomic.Int64
	refused   atomic.Int64
	loops     atomic.Int64
	pauses    atomic.Int64
	paused    atomic.Int64 // readers waiting for room right now
	openCount atomic.Int64
	delayed   atomic.Int64
	delayedB  atomic.Int64
	late      atomic.Int64
	maxLate   atomic.Int64 // nanoseconds
}

// pair is one proxied connection: the client side and its upstream side.
type pair struct {
	client   *net.TCPConn
	upstream *net.TCPConn
	held     atomic.Int64 // bytes of this pair read and not yet written
	// lot is drawn once per connection in [0, 1): the connection is
	// affected while lot < Shape.Share, so a share keeps choosing the same
	// connections across changes of the setting.
	lot  float64
	done chan struct{}
	once sync.Once
}

// abort tears both sides down, which ends every read and write on them, and
// wakes a reader waiting for room.
func (pr *pair) abort() {
	pr.once.Do(func() { close(pr.done) })
	_ = pr.client.Close()
	_ = pr.upstream.Close()
}

// direction is one way of one pair: src's bytes go to dst.
type direction struct {
	pr      *pair
	src     *net.TCPConn
	dst     *net.TCPConn
	q       chan chunk
	dir     Direction
	written *atomic.Int64
	// pending counts chunks queued and not yet written: the reader writes
	// only when it is zero, so bytes never overtake each other.
	pending atomic.Int64
}

// chunk is one read from one side, stamped with when it was read and when it
// is due to be written.
type chunk struct {
	data []byte
	read time.Time
	due  time.Time
}

// Options configure a Proxy. The zero value is usable: default limits, and
// a panic in a goroutine of the proxy ends the process.
type Options struct {
	// Limits bound connections and bytes held; zero fields are defaults.
	Limits Limits
	// Guard, when set, is deferred first in every goroutine the proxy
	// starts: sdk.Guard(ctx) turns a panic there into a revert of what the
	// plugin holds instead of the end of the plugin process.
	Guard func()
	// Route, when set, names and dials the upstream of each client
	// connection in place of the fixed upstream.
	Route Route
}

// Route names the upstream of one client connection and dials it.
type Route interface {
	// Upstream is where client's traffic is going.
	Upstream(client *net.TCPConn) (string, error)
	// Dial connects to addr; ctx bounds it.
	Dial(ctx context.Context, addr string) (*net.TCPConn, error)
}

// Listen starts a pass-through proxy (no delay) on listen that forwards to upstream, with default limits. It returns once the listener is bound.
func Listen(listen, upstream string) (*Proxy, error) {
	return ListenOptions(listen, upstream, Options{})
}

// ListenOptions is Listen with options. An upstream that is the listen
// address itself (as far as can be told before a hostname resolves) is
// ErrLoop; one that resolves to it later is refused at each dial.
func ListenOptions(listen, upstream string, o Options) (*Proxy, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	if ap, err := netip.ParseAddrPort(upstream); err == nil && coversAddr(ln.Addr(), ap) {
		_ = ln.Close()
		return nil, fmt.Errorf("%w: upstream %s is the proxy's own listen address %s", ErrLoop, upstream, listen)
	}
	return serveOn(ln, upstream, o), nil
}

// serveOn runs a proxy on a listener it now owns.
func serveOn(ln net.Listener, upstream string, o Options) *Proxy {
	guard := o.Guard
	if guard == nil {
		guard = func() {}
	}
	p := &Proxy{
		ln:       ln,
		upstream: upstream,
		guard:    guard,
		changed:  make(chan struct{}),
		freed:    make(chan struct{}),
		pairs:    make(map[*pair]struct{}),
		closing:  make(chan struct{}),
		limits:   o.Limits.orDefault(),
		route:    o.Route,
		shape:    Shape{Share: 1, Direction: DirBoth},
	}
	p.wg.Go(p.acceptLoop)
	return p
}

// SetLimits changes the limits for what comes next: connections held now
// stay (a lower connection cap refuses new ones only), paused readers look
// again.
func (p *Proxy) SetLimits(l Limits) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.limits = l.orDefault()
	close(p.freed)
	p.freed = make(chan struct{})
}

// Limits returns the limits in effect.
func (p *Proxy) Limits() Limits {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.limits
}

// Addr is the bound listen address (useful with port 0).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetDelay sets a uniform delay and jitter on every connection in both
// directions; SetDelay(0, 0) ends the fault. It is SetShape for the simple
// case.
func (p *Proxy) SetDelay(delay, jitter time.Duration) {
	p.SetShape(Shape{Delay: delay, Jitter: jitter, Share: 1, Direction: DirBoth})
}

// SetShape sets the delay for chunks read from now on. A zero delay and
// jitter ends the fault: chunks already waiting are delivered at once (a
// revert never waits out a sleep) and in order, and each direction goes back
// to passing bytes straight through once it holds nothing.
//
// More generally, chunks already waiting keep their due time unless the new
// setting would deliver them sooner: lowering the delay never makes a chunk
// wait longer than the new setting allows. Negative values count as zero.
func (p *Proxy) SetShape(sh Shape) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// Clamped, whatever the caller checked: the arithmetic of sample and
	// waitDue must never overflow (a jitter of 1,500,000h once did).
	sh.Delay = min(max(sh.Delay, 0), MaxDelay)
	sh.Jitter = min(max(sh.Jitter, 0), MaxDelay)
	sh.Share = min(max(sh.Share, 0), 1)
	if sh.Direction == "" {
		sh.Direction = DirBoth
	}
	p.shape = sh
	// Closing the channel wakes every writer that waits for a due time, so
	// it can recompute the wait under the new setting.
	close(p.changed)
	p.changed = make(chan struct{})
	// A read deadline in the past ends a blocked read without losing a
	// byte; the reader then looks at the new setting and goes on passing
	// bytes through or reading chunks. The reader clears the deadline before it
	// looks, and this sets it after the setting changed, so no change is
	// missed.
	now := time.Now()
	for pr := range p.pairs {
		_ = pr.client.SetReadDeadline(now)
		_ = pr.upstream.SetReadDeadline(now)
	}
}

// Delay returns the current delay and jitter.
func (p *Proxy) Delay() (delay, jitter time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.shape.Delay, p.shape.Jitter
}

// Drain ends the fault and stops taking connections, but lets the
// connections it carries go on, with no delay, until
// their ends close them; their goroutines end with them. Intercept mode
// drains on revert: the rules are gone, so new connections go straight to
// the destination, while connections made through the rules stay bound to
// the proxy by connection tracking and would break if it closed.
func (p *Proxy) Drain() {
	p.SetShape(Shape{})
	_ = p.ln.Close()
}

// Stats returns counts: connections accepted, bytes forwarded each direction.
func (p *Proxy) Stats() Stats {
	return Stats{
		Accepted:        p.accepted.Load(),
		BytesToUpstream: p.toUp.Load(),
		BytesToClient:   p.toClient.Load(),
		BytesHeld:       p.held.Load(),
		Open:            p.openCount.Load(),
		Refused:         p.refused.Load(),
		LoopsRefused:    p.loops.Load(),
		ReadPauses:      p.pauses.Load(),
		Delayed:         p.delayed.Load(),
		DelayedBytes:    p.delayedB.Load(),
		Late:            p.late.Load(),
		MaxLate:         time.Duration(p.maxLate.Load()),
	}
}

// LateAfter is how far past its due time a delayed chunk's write counts as
// late (Stats.Late).
const LateAfter = 100 * time.Microsecond

// released counts a delayed chunk of n bytes written late past its due
// time.
func (p *Proxy) released(n int, late time.Duration) {
	p.delayed.Add(1)
	p.delayedB.Add(int64(n))
	if late > LateAfter {
		p.late.Add(1)
	}
	for {
		m := p.maxLate.Load()
		if int64(late) <= m || p.maxLate.CompareAndSwap(m, int64(late)) {
			return
		}
	}
}

// Close stops accepting, delivers every chunk already read (no data lost), closes all connections and listener, and waits for every goroutine it started before returning. Safe to call twice.
//
// Delivery of what was read is bounded by closeFlushTimeout per connection,
// so a peer that stops reading cannot block Close forever.
func (p *Proxy) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.closing)
		p.closeErr = p.ln.Close()
		now := time.Now()
		for pr := range p.pairs {
			p.stopPair(pr, now)
		}
		p.mu.Unlock()
	})
	p.wg.Wait()
	return p.closeErr
}

// stopPair makes the readers of pr stop while letting its writers flush.
// A read deadline in the past ends a blocked Read without closing the socket,
// so chunks already read can still be written.
func (p *Proxy) stopPair(pr *pair, now time.Time) {
	for _, c := range []*net.TCPConn{pr.client, pr.upstream} {
		_ = c.SetReadDeadline(now)
		_ = c.SetWriteDeadline(now.Add(closeFlushTimeout))
	}
}

func (p *Proxy) acceptLoop() {
	defer p.guard()
	var backoff time.Duration
	for {
		c, err := p.ln.Accept()
		if err != nil {
			select {
			case <-p.closing:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return // Drain closed the listener
			}
			// Errors such as running out of file descriptors pass; back off
			// like net/http does, but stay interruptible by Close.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-p.closing:
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		p.accepted.Add(1)
		if !p.admit() {
			// Over the cap: the client is told at once (its connection
			// closes) rather than left waiting, and nothing is dialed.
			p.refused.Add(1)
			_ = c.(*net.TCPConn).SetLinger(0)
			_ = c.Close()
			continue
		}
		p.wg.Go(func() {
			defer p.guard()
			defer p.leave()
			p.serve(c.(*net.TCPConn))
		})
	}
}

// admit counts a new client connection in, unless the proxy holds its cap.
func (p *Proxy) admit() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open >= p.limits.Connections {
		return false
	}
	p.open++
	p.openCount.Add(1)
	return true
}

// leave counts a client connection out.
func (p *Proxy) leave() {
	p.mu.Lock()
	p.open--
	p.mu.Unlock()
	p.openCount.Add(-1)
}

// serve dials the upstream for one client and runs both directions until
// they are done.
func (p *Proxy) serve(client *net.TCPConn) {
	up, err := p.dialFor(client)
	if err != nil {
		// The client must not hang on a proxy that has nowhere to send it.
		_ = client.Close()
		return
	}
	pr := &pair{client: client, upstream: up, done: make(chan struct{}), lot: rand.Float64()}

	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		pr.abort()
		return
	}
	p.pairs[pr] = struct{}{}
	p.mu.Unlock()

	var wg sync.WaitGroup
	p.pipe(&wg, pr, client, up, &p.toUp, DirToUpstream)
	p.pipe(&wg, pr, up, client, &p.toClient, DirToClient)
	wg.Wait()

	p.mu.Lock()
	delete(p.pairs, pr)
	p.mu.Unlock()
	pr.abort()
}

// dialFor connects to the upstream of client: the fixed one, or the one its
// route names.
func (p *Proxy) dialFor(client *net.TCPConn) (*net.TCPConn, error) {
	if p.route == nil {
		return p.dial(p.upstream, nil)
	}
	addr, err := p.route.Upstream(client)
	if err != nil {
		return nil, err
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil && coversAddr(p.ln.Addr(), ap) {
		// Someone connected to the proxy's own port, not through a rule:
		// forwarding would connect the proxy to itself.
		p.loops.Add(1)
		return nil, fmt.Errorf("%w: connection to %s did not come through a rule", ErrLoop, addr)
	}
	return p.dial(addr, p.route)
}

// dial connects to upstream with a bounded timeout that Close also cuts short.
func (p *Proxy) dial(upstream string, route Route) (*net.TCPConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	var watch sync.WaitGroup
	watch.Go(func() {
		select {
		case <-p.closing:
			cancel()
		case <-ctx.Done():
		}
	})
	// Control sees the address after resolution, just before connect: a
	// hostname that resolves to the proxy's own address is caught here
	// even if it did not at validation.
	if route != nil {
		c, err := route.Dial(ctx, upstream)
		cancel()
		watch.Wait()
		return c, err
	}
	d := net.Dialer{Control: func(_, address string, _ syscall.RawConn) error {
		if ap, err := netip.ParseAddrPort(address); err == nil && coversAddr(p.ln.Addr(), ap) {
			p.loops.Add(1)
			return fmt.Errorf("%w: upstream %s resolved to %s, the proxy's own listen address", ErrLoop, upstream, address)
		}
		return nil
	}}
	c, err := d.DialContext(ctx, "tcp", upstream)
	cancel()
	watch.Wait()
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// pipe starts one direction, src to dst: a reader that stamps chunks and a
// writer that delivers them when due. Both are added to wg.
func (p *Proxy) pipe(wg *sync.WaitGroup, pr *pair, src, dst *net.TCPConn, written *atomic.Int64, dir Direction) {
	d := &direction{pr: pr, src: src, dst: dst, q: make(chan chunk, queueChunks), dir: dir, written: written}
	q := d.q
	var readErr error // set before q is closed, so the writer may read it after
	wg.Go(func() {
		defer p.guard()
		// Deferred so that a panic (recovered by the guard) still ends
		// the writer's loop.
		defer close(q)
		readErr = p.read(d)
	})
	wg.Go(func() {
		defer p.guard()
		finished := false
		defer func() {
			if finished {
				return
			}
			// A panic (recovered by the guard): tear the pair down and
			// drain, so the reader never blocks on a send.
			pr.abort()
			for c := range q {
				p.release(pr, int64(len(c.data)))
			}
		}()
		p.deliver(d, func() error { return readErr })
		finished = true
	})
}

// deliver writes the chunks of q to dst as they fall due, then passes on
// how src ended (readErr is read only once q is closed).
func (p *Proxy) deliver(d *direction, readErr func() error) {
	pr, dst, q, written := d.pr, d.dst, d.q, d.written
	broken := false
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	// The writer always drains q to the end, even after a failed write,
	// so the reader can never block on a send.
	for c := range q {
		if !broken {
			if p.waitDue(c, timer) {
				p.released(len(c.data), time.Since(c.due))
			}
			n, err := dst.Write(c.data)
			written.Add(int64(n))
			if err != nil {
				broken = true
				pr.abort()
			}
		}
		p.release(pr, int64(len(c.data)))
		d.pending.Add(-1)
	}
	if broken {
		return
	}
	select {
	case <-p.closing:
		// Everything read was delivered; tell dst no more is coming.
		_ = dst.CloseWrite()
		return
	default:
	}
	if errors.Is(readErr(), io.EOF) {
		// A half-close travels on once the data before it is out.
		_ = dst.CloseWrite()
		return
	}
	// src failed (reset, for example): the pair cannot go on.
	pr.abort()
}

// read moves src's bytes towards dst until src fails or ends. While this
// direction of this connection has no delay and nothing is queued, it
// writes each read to dst itself (on loopback a read and a write through a
// chunkSize buffer carried a stream 1.2-1.4x faster than the kernel's
// splice through a pipe, which this did before; see BENCHMARKS.md); a
// change of setting interrupts the read with a read deadline, without
// losing a byte, and the reader goes on in chunks: each
// read is stamped with its release time (arrival in the kernel, see
// arrival.go, plus the sampled delay), so delays never stack. Before each
// chunked read it waits for room: a peer that does not read what it is sent
// holds at most its connection's share (plus this one buffer), and all
// connections together at most the proxy's; past that, src is simply not
// read, and TCP tells the sender to slow down.
func (p *Proxy) read(d *direction) error {
	pr, src, q := d.pr, d.src, d.q
	var buf []byte
	var stamped *stampedReader
	var prevDue time.Time
	for {
		// Cleared before the setting is looked at; SetShape sets it after
		// changing the setting (see there).
		_ = src.SetReadDeadline(time.Time{})
		select {
		case <-p.closing:
			return errPairDone
		default:
		}
		if buf == nil {
			buf = make([]byte, chunkSize)
		}
		if !p.delays(pr, d.dir) && d.pending.Load() == 0 {
			// Nothing queued, so the writer is idle: the reader writes
			// itself, and a peer that does not read holds it in the
			// write, which stops src being read.
			n, err := src.Read(buf)
			if n > 0 {
				w, werr := d.dst.Write(buf[:n])
				d.written.Add(int64(w))
				if werr != nil {
					return werr
				}
			}
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
			continue
		}
		if err := p.waitRoom(d); err != nil {
			return err
		}
		if stamped == nil {
			stamped = newStampedReader(src)
		}
		var n int
		var now time.Time
		var err error
		if stamped != nil {
			n, now, err = stamped.read(buf)
			if n == 0 && err == nil {
				err = io.EOF
			}
		} else {
			n, err = src.Read(buf)
			now = time.Now()
		}
		if n > 0 {
			due := now.Add(p.sample(pr, d.dir))
			// Never write a chunk before the one read ahead of it.
			if due.Before(prevDue) {
				due = prevDue
			}
			prevDue = due
			p.held.Add(int64(n))
			pr.held.Add(int64(n))
			d.pending.Add(1)
			q <- chunk{data: bytes.Clone(buf[:n]), read: now, due: due}
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return err
		}
	}
}

// errPairDone ends a reader whose pair was torn down or whose proxy closed
// while it waited for room.
var errPairDone = errors.New("connection closed while waiting for room")

// waitRoom returns when direction d of its pair may hold more bytes, or an
// error when the pair is torn down or the proxy closes first. A direction
// with nothing queued may always read (one buffer past the caps, as the
// caps say): otherwise the bytes held the other way could stop it for
// good. An upstream that answers as it reads (an echo, a stream) blocks
// writing its answers when this direction is not read, stops reading, and
// the other direction's writer then blocks on it with its bytes still
// held.
func (p *Proxy) waitRoom(d *direction) error {
	pr := d.pr
	counted := false
	for {
		// Announce the wait before looking: a writer that frees bytes
		// after this sees a waiter and wakes it.
		p.paused.Add(1)
		p.mu.Lock()
		lim, freed := p.limits, p.freed
		p.mu.Unlock()
		if d.pending.Load() == 0 || (pr.held.Load() < lim.BytesPerConnection && p.held.Load() < lim.BytesInFlight) {
			p.paused.Add(-1)
			return nil
		}
		if !counted {
			counted = true
			p.pauses.Add(1)
		}
		select {
		case <-freed:
			p.paused.Add(-1)
		case <-pr.done:
			p.paused.Add(-1)
			return errPairDone
		case <-p.closing:
			p.paused.Add(-1)
			return errPairDone
		}
	}
}

// release forgets n bytes written (or dropped) for pr and wakes paused
// readers, if there are any.
func (p *Proxy) release(pr *pair, n int64) {
	p.held.Add(-n)
	pr.held.Add(-n)
	if p.paused.Load() == 0 {
		return
	}
	p.mu.Lock()
	close(p.freed)
	p.freed = make(chan struct{})
	p.mu.Unlock()
}

// delays reports whether chunks of this direction of pr are delayed now.
func (p *Proxy) delays(pr *pair, dir Direction) bool {
	p.mu.Lock()
	sh := p.shape
	p.mu.Unlock()
	return sh.affects(pr.lot, dir)
}

// sample draws the delay of one chunk of this direction of pr (zero when
// the setting does not affect it).
func (p *Proxy) sample(pr *pair, dir Direction) time.Duration {
	p.mu.Lock()
	sh := p.shape
	p.mu.Unlock()
	if !sh.affects(pr.lot, dir) {
		return 0
	}
	return sh.Sample(rand.Float64, rand.NormFloat64)
}

// waitDue blocks until c is due. It wakes on every SetShape to recompute the
// due time, and returns at once when the proxy closes, so neither a revert nor
// a Close ever waits out a delay. It says whether c was held to its own due
// time (not released early by a revert or a Close, and delayed at all), so
// that its lateness counts in Stats.
//
// The runtime's timers wake a parked goroutine with millisecond granularity
// (the poller's timeout is in milliseconds), which alone overshoots a due
// time by up to a millisecond. So the timer is set finelead short of the due
// time, and the rest is left to sleepUntil. The last stretch is not
// interruptible, which costs a revert at most finelead.
func (p *Proxy) waitDue(c chunk, timer *time.Timer) (onTime bool) {
	for {
		p.mu.Lock()
		longest, changed := p.shape.Longest(), p.changed
		p.mu.Unlock()

		due := c.due
		// The latest the current setting would deliver this chunk.
		if limit := c.read.Add(longest); limit.Before(due) {
			due = limit
		}
		wait := time.Until(due)
		if wait <= 0 {
			// Due already: a chunk with no delay, one the setting now
			// releases early, or one whose wait overran.
			return due.Equal(c.due) && c.due.After(c.read)
		}
		if wait <= finelead {
			sleepUntil(due)
			return due.Equal(c.due)
		}
		timer.Reset(wait - finelead)
		select {
		case <-timer.C:
		case <-changed:
			timer.Stop()
		case <-p.closing:
			timer.Stop()
			return false
		}
	}
}

// finelead is how long before a due time the writer stops trusting the
// runtime's timer and sleeps precisely.
const finelead = 1500 * time.Microsecond

// The writer stops sleeping and spins a lead before a due time: a thread
// woken from nanosleep on a virtual machine is typically 60-200 µs late
// (measured with BenchmarkReleaseWait), more the longer it slept, whatever
// its timer slack. The lead is what this machine needs now: the 90th
// percentile of the last wakeRing nanosleeps' lateness, plus spinMargin,
// between minSpinLead and maxSpinLead. It starts at maxSpinLead, and a
// quiet machine brings it down, and the CPU the spin costs with it. Not the
// latest of them: the rare wake that is milliseconds late (the thread
// preempted) would pin the lead at its most, and no lead short of those
// milliseconds would have helped that release.
const (
	minSpinLead = 20 * time.Microsecond
	maxSpinLead = 200 * time.Microsecond
	spinMargin  = 20 * time.Microsecond
	wakeRing    = 64
)

// wakes holds the lateness of the latest nanosleeps of sleepUntil.
var wakes = func() *[wakeRing]atomic.Int64 {
	var r [wakeRing]atomic.Int64
	for i := range r {
		r[i].Store(int64(maxSpinLead))
	}
	return &r
}()

var wakeNext atomic.Uint32

// noteWake records how late a nanosleep woke.
func noteWake(late time.Duration) {
	wakes[wakeNext.Add(1)%wakeRing].Store(int64(max(late, 0)))
}

// spinLead is how long before a due time the writer spins.
func spinLead() time.Duration {
	var ring [wakeRing]int64
	for i := range wakes {
		ring[i] = wakes[i].Load()
	}
	slices.Sort(ring[:])
	p90 := time.Duration(ring[wakeRing*9/10])
	return min(maxSpinLead, max(minSpinLead, p90+spinMargin))
}

// spinners counts the writers spinning now; at most maxSpinners spin at
// once (half the CPUs, at least one), so the exactness bought with CPU time
// never takes more than half the machine: the others sleep to the due time.
var (
	spinners    atomic.Int32
	maxSpinners = int32(max(1, runtime.NumCPU()/2))
)

// sleepUntil returns at due, as exactly as the machine allows: a nanosleep
// to spinLead short of it, then a spin that yields to other goroutines, or,
// when enough writers already spin, a nanosleep to the end.
func sleepUntil(due time.Time) {
	if rest := time.Until(due) - spinLead(); rest > 0 {
		wake := time.Now().Add(rest)
		sleepPrecise(rest)
		noteWake(time.Since(wake))
	}
	if spinners.Add(1) > maxSpinners {
		spinners.Add(-1)
		if rest := time.Until(due); rest > 0 {
			sleepPrecise(rest)
		}
		return
	}
	defer spinners.Add(-1)
	for time.Now().Before(due) {
		runtime.Gosched()
	}
}

// sleepPrecise sleeps d in the kernel (clock_nanosleep through nanosleep),
// blocking this goroutine's thread; the runtime hands its processor on.
func sleepPrecise(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for {
		var rem syscall.Timespec
		err := syscall.Nanosleep(&ts, &rem)
		if err != syscall.EINTR {
			return
		}
		ts = rem
	}
}
