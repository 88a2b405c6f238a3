package conns

import (
	"testing"

	"github.com/phasedhq/phased/internal/e2e"
)

func TestMain(m *testing.M) { e2e.Main(m) }
