package ledger_test

import (
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/strata-mq/strata/api/bookiepb"
)

func bookieClient(t *testing.T, addr string) bookiepb.BookieClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return bookiepb.NewBookieClient(cc)
}
