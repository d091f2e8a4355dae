package tenants

import (
	"testing"

	"github.com/strata-mq/strata/internal/testutil"
)

func TestMain(m *testing.M) { testutil.Main(m) }
