package offload

import (
	"io"
	"sync"
	"sync/atomic"
)

// chunk is a read buffer that decoded payloads point into (no copy).
//
// refs counts the users of the buffer: the chunkReader while it fills the
// chunk, plus every decoded entry not yet handed to a caller. When refs
// drops to zero the buffer goes back to its pool, unless an entry of it
// was handed out by Read (kept): such payloads belong to the caller.
// Entries handed to a ReadFunc callback are borrowed and released after
// the callback returns, so a replay through ReadFunc recycles a handful of
// chunks instead of allocating fresh memory for every byte.
type chunk struct {
	buf  []byte
	refs atomic.Int32
	kept atomic.Bool
	pool *chunkPool // nil: not recyclable (an oversize buffer)
}

func (c *chunk) ref() { c.refs.Add(1) }

// unref drops n references; the last one recycles the chunk.
func (c *chunk) unref(n int32) {
	if c.refs.Add(-n) == 0 && !c.kept.Load() && c.pool != nil {
		c.pool.put(c)
	}
}

// keep marks the chunk as holding caller-owned payloads.
func (c *chunk) keep() { c.kept.Store(true) }

// chunkPool recycles chunks of one size. The garbage collector may empty
// it at any time, so it never pins memory.
type chunkPool struct {
	size int
	pool sync.Pool
}

func newChunkPool(size int) *chunkPool {
	return &chunkPool{size: size}
}

// get returns a chunk with an empty buffer of capacity >= n and one
// reference (the caller's).
func (p *chunkPool) get(n int) *chunk {
	var c *chunk
	if n <= p.size {
		if v, ok := p.pool.Get().(*chunk); ok {
			c = v
		} else {
			c = &chunk{buf: make([]byte, 0, p.size), pool: p}
		}
	} else {
		c = &chunk{buf: make([]byte, 0, n)} // oversize: used once
	}
	c.buf = c.buf[:0]
	c.kept.Store(false)
	c.refs.Store(1)
	return c
}

func (p *chunkPool) put(c *chunk) { p.pool.Put(c) }

// chunkReader reads GET bodies into chunks and hands out slices of them.
// Bytes of a chunk are never written again while any slice of it may be in
// use: new bytes go to its unused capacity or to a new chunk.
type chunkReader struct {
	body io.Reader
	pool *chunkPool
	// beforeRead, if set, runs before every read of the body: the last
	// moment before the reader may block on the network.
	beforeRead func()
	cur        *chunk // holds the reader's own reference; nil before the first read
	pos        int    // cur.buf[pos:] is read but not handed out
}

// reset switches to a new body, dropping unread bytes of the old one.
func (c *chunkReader) reset(body io.Reader) {
	c.body = body
	if c.cur != nil {
		c.cur.buf = c.cur.buf[:c.pos]
	}
}

// release drops the reader's reference to its chunk.
func (c *chunkReader) release() {
	if c.cur != nil {
		c.cur.unref(1)
		c.cur, c.pos = nil, 0
	}
}

// take returns the next n bytes of the body and the chunk they are in. The
// slice is capacity-limited, so an append by its user cannot reach other
// bytes. The bytes stay valid while the caller holds a reference to the
// chunk (or, without one, until the next take). It fails with
// io.ErrUnexpectedEOF when the body ends first.
func (c *chunkReader) take(n int) ([]byte, *chunk, error) {
	for c.cur == nil || len(c.cur.buf)-c.pos < n {
		if c.cur == nil || cap(c.cur.buf)-c.pos < n {
			// Not enough room: carry the partial bytes to a new chunk.
			next := c.pool.get(n)
			if c.cur != nil {
				next.buf = append(next.buf, c.cur.buf[c.pos:]...)
				c.cur.unref(1)
			}
			c.cur, c.pos = next, 0
		}
		if c.beforeRead != nil {
			c.beforeRead()
		}
		b := c.cur.buf
		m, err := c.body.Read(b[len(b):cap(b)])
		c.cur.buf = b[:len(b)+m]
		if err != nil && len(c.cur.buf)-c.pos < n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, err
		}
	}
	b := c.cur.buf[c.pos : c.pos+n : c.pos+n]
	c.pos += n
	return b, c.cur, nil
}

// chunkRun drops chunk references in runs: consecutive entries mostly
// share a chunk, so this is one atomic operation per chunk, not per entry.
type chunkRun struct {
	c    *chunk
	n    int32
	keep bool // the entries were handed over: their chunks are the caller's
}

func (r *chunkRun) add(c *chunk) {
	if c != r.c {
		r.flush()
		r.c = c
	}
	r.n++
}

func (r *chunkRun) flush() {
	if r.c != nil {
		if r.keep {
			r.c.keep() // before the unref that could recycle it
		}
		r.c.unref(r.n)
		r.c, r.n = nil, 0
	}
}
