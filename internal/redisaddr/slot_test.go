package redisaddr

import "testing"

// The slots Redis itself gives (CLUSTER KEYSLOT).
func TestSlotMatchesRedis(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]int{
		"foo":                  12182,
		"123456789":            12739,
		"{user1000}.following": 3443,
		"{user1000}.followers": 3443,
		"foo{}{bar}":           8363,
		"execq:{abc}:stream":   7638,
		"abc":                  7638,
	} {
		if got := Slot(key); got != want {
			t.Errorf("Slot(%q) = %d, want %d", key, got, want)
		}
	}
}
