// Package ketama implements the consistent-hash ring that gopush-cluster 1.0.5
// uses to place keys on comet nodes and on storage shards.
//
// A node of weight w holds base×w points on the ring. The i-th point
// (i = 1..base×w) is the big-endian uint32 of bytes 16..19 of
// SHA-1(name + ":" + i). A key belongs to the first point at or after the same
// value computed from SHA-1(key), wrapping around to the first point.
//
// A Ring is immutable once built and safe for any number of concurrent
// readers. To change membership, build a new Ring and swap it in.
package ketama

import (
	"cmp"
	"crypto/sha1"
	"encoding/binary"
	"slices"
	"strconv"
	"unsafe"
)

// DefaultBase is the number of points per unit of weight used by gopush-cluster.
const DefaultBase = 255

type point struct {
	value uint32
	node  int32 // index into Ring.names
}

// Ring is a built, read-only ketama ring.
type Ring struct {
	points  []point
	names   []string
	weights map[string]int
}

// Builder collects nodes and their weights before a Ring is built.
type Builder struct {
	base    int
	weights map[string]int
}

// New returns a Builder whose nodes get base points per unit of weight.
// A base below 1 is replaced by DefaultBase.
func New(base int) *Builder {
	if base < 1 {
		base = DefaultBase
	}
	return &Builder{base: base, weights: make(map[string]int)}
}

// Add adds a node with the given weight, replacing an earlier weight for the
// same name. A weight below 1 removes the node.
func (b *Builder) Add(name string, weight int) *Builder {
	if weight < 1 {
		delete(b.weights, name)
		return b
	}
	b.weights[name] = weight
	return b
}

// Build computes the ring. The Builder may be reused afterwards; the ring
// does not share state with it.
func (b *Builder) Build() *Ring {
	r := &Ring{weights: make(map[string]int, len(b.weights))}
	total := 0
	for name, w := range b.weights {
		r.weights[name] = w
		r.names = append(r.names, name)
		total += w * b.base
	}
	// Sorting the names makes the ring deterministic even when two points
	// collide on the same value.
	slices.Sort(r.names)
	r.points = make([]point, 0, total)
	buf := make([]byte, 0, 64)
	for idx, name := range r.names {
		spots := r.weights[name] * b.base
		for i := 1; i <= spots; i++ {
			buf = append(buf[:0], name...)
			buf = append(buf, ':')
			buf = strconv.AppendInt(buf, int64(i), 10)
			r.points = append(r.points, point{value: hashBytes(buf), node: int32(idx)})
		}
	}
	slices.SortStableFunc(r.points, func(a, b point) int { return cmp.Compare(a.value, b.value) })
	return r
}

// FromWeights builds a ring from a node→weight map in one call.
func FromWeights(base int, weights map[string]int) *Ring {
	b := New(base)
	for name, w := range weights {
		b.Add(name, w)
	}
	return b.Build()
}

func hashBytes(b []byte) uint32 {
	sum := sha1.Sum(b)
	return binary.BigEndian.Uint32(sum[16:20])
}

// Get returns the node that owns key, or "" when the ring is empty or nil.
// It does not allocate.
func (r *Ring) Get(key string) string {
	if r == nil || len(r.points) == 0 {
		return ""
	}
	// sha1.Sum only reads its argument, so viewing the string's bytes
	// without copying is safe and keeps the lookup allocation-free.
	v := hashBytes(unsafe.Slice(unsafe.StringData(key), len(key)))
	lo, hi := 0, len(r.points)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r.points[mid].value < v {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo == len(r.points) {
		lo = 0
	}
	return r.names[r.points[lo].node]
}

// Nodes returns the node names on the ring, sorted.
func (r *Ring) Nodes() []string {
	if r == nil {
		return nil
	}
	return slices.Clone(r.names)
}

// Weights returns a copy of the node→weight map the ring was built from.
func (r *Ring) Weights() map[string]int {
	out := make(map[string]int)
	if r == nil {
		return out
	}
	for k, v := range r.weights {
		out[k] = v
	}
	return out
}

// Len returns the number of nodes on the ring.
func (r *Ring) Len() int {
	if r == nil {
		return 0
	}
	return len(r.names)
}
