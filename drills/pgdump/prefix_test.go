package pgdump

import "testing"

// Writes that span parts, and parts that finish out of order, give the
// bytes from the start that are all there.
func TestPrefixOfParts(t *testing.T) {
	p := newPrefix(25, 10) // parts 0-9, 10-19, 20-24
	for _, step := range []struct {
		off, n, want int64
	}{
		{0, 4, 4},
		{10, 10, 4}, // part 1 whole, part 0 not yet
		{4, 6, 20},  // part 0 whole: parts 0 and 1
		{20, 3, 23}, // part 2 in progress
		{23, 2, 25}, // all there
		{25, 0, 25}, // nothing more
	} {
		if got := p.add(step.off, step.n); got != step.want {
			t.Fatalf("add(%d, %d) = %d, want %d", step.off, step.n, got, step.want)
		}
	}
	one := newPrefix(25, 10) // one GET of the whole object, in writes that cross parts
	for _, step := range []struct{ off, n, want int64 }{{0, 7, 7}, {7, 15, 22}, {22, 3, 25}} {
		if got := one.add(step.off, step.n); got != step.want {
			t.Fatalf("one GET: add(%d, %d) = %d, want %d", step.off, step.n, got, step.want)
		}
	}
}
