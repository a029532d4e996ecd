package memstore

import (
	"testing"
	"time"

	"github.com/monkeyci/monkeyci/coordinator"
	"github.com/monkeyci/monkeyci/coordinator/storetest"
)

// The in-memory store keeps the contract the SQL store keeps.
func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, now func() time.Time) coordinator.Store { return New(now) })
}
