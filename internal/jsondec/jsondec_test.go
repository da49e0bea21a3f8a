package jsondec

import (
	"strings"
	"testing"
)

var pointKeys = NewKeys("x", "label")

type point struct {
	X     int
	Label string
}

func decodePoint(d *Decoder, p *point) {
	d.Object(pointKeys, func(key string) {
		switch key {
		case "x":
			d.Int(&p.X)
		case "label":
			d.String(&p.Label)
		}
	})
}

func decodePoints(data string, budget int) ([]point, error) {
	var out []point
	err := Decode(data, budget, "a list of points", func(d *Decoder) { out = Slice(d, decodePoint) })
	return out, err
}

// TestTopLevelListIsEstimated: a list that is the document itself gets its
// length estimated like a list in the top object, and the estimate stays
// within the budget.
func TestTopLevelListIsEstimated(t *testing.T) {
	n := 10 * EstimateAfter
	doc := "[" + strings.TrimSuffix(strings.Repeat(`{"x":1,"label":"a\u00e9"},`, n), ",") + "]"
	got, err := decodePoints(doc, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n || got[n-1] != (point{1, "aé"}) {
		t.Fatalf("decoded %d points, the last %+v", len(got), got[len(got)-1])
	}
	if cap(got) > 2*n {
		t.Errorf("room for %d points set aside for %d", cap(got), n)
	}
}

// TestErrorsNameTheDocumentAndField: the budget's refusal names what the
// document is; a value of the wrong type names its field; the document of
// the wrong kind names what was wanted.
func TestErrorsNameTheDocumentAndField(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{"[" + strings.Repeat("{},", 99) + "{}]", "more entries than a list of points can hold"},
		{`[{"x":"1"}]`, `field "x" holds a JSON string, want a number`},
		{`{"x":1}`, "the document is a JSON object, want an array"},
		{`[{"x":1}] [`, "after top-level value"},
		{`[{"x":1,"x":2}]`, `key "x" appears twice in one object`},
	} {
		if _, err := decodePoints(tc.doc, 64); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.doc, err, tc.want)
		}
	}
}

// TestNamesIsACopy: Keys.Names cannot change the keys it reports.
func TestNamesIsACopy(t *testing.T) {
	names := pointKeys.Names()
	names[0] = "y"
	if pointKeys.Names()[0] != "x" {
		t.Fatal("Names returned the keys themselves")
	}
}
