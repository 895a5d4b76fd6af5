package dbop

import (
	"context"
	"testing"
	"time"

	"github.com/dbop-go/dbop/internal/hotlock"
)

// coordinatingHotSpot returns a HotSpot that takes its lock across
// processes, with a lock that waits in place, at level slots.
func coordinatingHotSpot(t *testing.T, slots int) *hotSpot {
	h := HotSpot().(*hotSpot)
	h.coordinated, h.inPlace, h.probed = true, true, true
	h.yieldUntil = 1 << 62 // other processes seen
	h.level.slots = slots
	if !h.coordinating() || !h.pipelines() {
		t.Fatal("the HotSpot does not coordinate")
	}
	return h
}

// admitNow admits an attempt with keys if it may start at once.
func admitNow(h *hotSpot, rs *retryState, keys hotKeys) (ticket, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	t, err := h.admit(ctx, rs, keys)
	return t, err == nil
}

// While the scope takes a lock per key, keyed attempts with disjoint keys
// run as many at once as the level says; attempts without keys, which all
// take the HotSpot's lock exclusively, still at most two (one holds the
// lock, one waits for it in the server), and keyed ones too while the
// scope has not taken a lock per key.
func TestHotSpotKeysLiftTheCapOfTwoOnlyForKeyLocks(t *testing.T) {
	for _, c := range []struct {
		name     string
		keysHeld bool
		keyed    bool
		want     int
	}{
		{"keyed, locks per key", true, true, 5},
		{"keyed, the HotSpot's lock alone", false, true, 2},
		{"unkeyed beside recent keyed work", true, false, 2},
	} {
		h := coordinatingHotSpot(t, 6)
		h.keyedUntil = 1 << 62 // keyed operations lately
		h.keysHeld = c.keysHeld
		admitted := 0
		for i := range 5 {
			var keys hotKeys
			if c.keyed {
				keys = hotKeys{int64(2 * i), int64(2*i + 1)}
			}
			if _, ok := admitNow(h, nil, keys); !ok {
				break
			}
			admitted++
		}
		if admitted != c.want {
			t.Errorf("%s: %d attempts admitted at once, want %d", c.name, admitted, c.want)
		}
	}
}

// A keyed attempt that held its keys' locks and still lost a conflict
// shows that the keys do not keep attempts apart (they lie, or the
// database reports conflicts between disjoint rows): the next attempts
// take the HotSpot's lock alone. A solo attempt (its operation lost
// twice) always does.
func TestHotSpotKeysLostWhileHoldingKeyLocks(t *testing.T) {
	h := coordinatingHotSpot(t, 1)
	keys := hotKeys{1, 2}
	tk, ok := admitNow(h, nil, keys)
	if !ok || !tk.lockKeys {
		t.Fatalf("first keyed attempt: admitted %v, ticket %+v; want one that locks its keys", ok, tk)
	}
	req := &hotlock.Request{Key: h.key, Keys: keys}
	req.Claim()
	req.Took()
	req.InPlace()
	req.HeldKeys()
	h.leave(tk, lost, time.Millisecond, req, false)
	tk, ok = admitNow(h, &retryState{attempt: 2}, keys)
	if !ok || tk.lockKeys {
		t.Errorf("after a loss while holding its keys' locks: admitted %v, lockKeys %v; want the HotSpot's lock alone", ok, tk.lockKeys)
	}
	h.leave(tk, success, time.Millisecond, nil, false)

	h = coordinatingHotSpot(t, 1)
	tk, ok = admitNow(h, &retryState{attempt: h.soloAfter + 1}, keys)
	if !ok || !tk.solo || tk.lockKeys {
		t.Errorf("a solo attempt: admitted %v, ticket %+v; want solo, the HotSpot's lock alone", ok, tk)
	}
}
