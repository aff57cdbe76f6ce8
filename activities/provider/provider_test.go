package provider

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestNameLocksSerialiseOneNameAndForgetIt: holders of one name never
// overlap, and a name nobody holds takes no memory.
func TestNameLocksSerialiseOneNameAndForgetIt(t *testing.T) {
	var locks NameLocks
	var inside, overlaps atomic.Int32
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "r-a"
			if i%2 == 1 {
				name = "r-b"
			}
			unlock := locks.Lock(name)
			if name == "r-a" {
				if inside.Add(1) > 1 {
					overlaps.Add(1)
				}
				inside.Add(-1)
			}
			unlock()
		}()
	}
	wg.Wait()
	assert.Zero(t, overlaps.Load())
	assert.Zero(t, locks.Len(), "every name forgotten")
}
