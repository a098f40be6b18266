package clock

import (
	"testing"
	"time"
)

func TestFakeTickerTicksWhenPassed(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	tk := f.NewTicker(5 * time.Second)
	defer tk.Stop()

	f.Advance(4 * time.Second)
	select {
	case <-tk.C():
		t.Fatal("ticked before its interval")
	default:
	}
	f.Advance(time.Second)
	select {
	case at := <-tk.C():
		if want := start.Add(5 * time.Second); !at.Equal(want) {
			t.Errorf("tick at %v, want %v", at, want)
		}
	default:
		t.Fatal("no tick at its interval")
	}
	// Three intervals at once give one tick, as a real ticker drops the
	// ticks nobody received; the next is due an interval after the last
	// passed one.
	f.Advance(15 * time.Second)
	<-tk.C()
	f.Advance(4 * time.Second)
	select {
	case <-tk.C():
		t.Fatal("ticked twice for one advance")
	default:
	}
	f.Advance(time.Second)
	select {
	case <-tk.C():
	default:
		t.Fatal("no tick at the next interval")
	}
	if got := f.Now(); !got.Equal(start.Add(25 * time.Second)) {
		t.Errorf("Now = %v", got)
	}
}

func TestFakeStoppedTickerIsForgotten(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	tk := f.NewTicker(time.Second)
	<-f.Made()
	if f.Tickers() != 1 {
		t.Fatalf("%d tickers, want 1", f.Tickers())
	}
	tk.Stop()
	f.Advance(time.Minute)
	select {
	case <-tk.C():
		t.Fatal("a stopped ticker ticked")
	default:
	}
	if f.Tickers() != 0 {
		t.Fatalf("%d tickers after Stop, want 0", f.Tickers())
	}
}
