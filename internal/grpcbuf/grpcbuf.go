// Package grpcbuf provides the gRPC buffer pool of every Strata server and
// client.
//
// gRPC's default pool has tiers of 256 B, 4 KiB, 16 KiB, 32 KiB and 1 MiB,
// and zeroes a buffer's whole capacity on every Get: each message between
// 32 KiB and 1 MiB — a typical batch of messages — costs a 1 MiB clear. This
// pool has a tier at every power of two from 256 B to 8 MiB, so a message
// clears at most twice its size.
package grpcbuf

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/mem"
)

// Pool is the shared buffer pool.
var Pool = newPool()

func newPool() mem.BufferPool {
	var exps []uint8
	for e := uint8(8); e <= 23; e++ {
		exps = append(exps, e)
	}
	p, err := mem.NewBinaryTieredBufferPool(exps...)
	if err != nil {
		panic(err) // the exponents are constant and valid
	}
	return p
}

// ServerOption makes a gRPC server use Pool.
func ServerOption() grpc.ServerOption { return experimental.BufferPool(Pool) }

// DialOption makes a gRPC client connection use Pool.
func DialOption() grpc.DialOption { return experimental.WithBufferPool(Pool) }
