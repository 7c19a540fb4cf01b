package capring

import "testing"

func TestSet(t *testing.T) {
	var s Set[*int]
	if s.Active() != nil {
		t.Fatal("a new set is not empty")
	}
	a, b := new(int), new(int)
	if id := s.NextID(); id != 1 {
		t.Fatalf("first id %d", id)
	}
	s.Add(a)
	if id := s.NextID(); id != 2 {
		t.Fatalf("NextID %d", id)
	}
	s.Add(b)
	l := s.List()
	l[0] = nil // a copy: the set is unchanged
	if got := s.Active(); len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("active %v", got)
	}
	s.Remove(a)
	s.Remove(a)
	if got := s.Active(); len(got) != 1 || got[0] != b {
		t.Fatalf("after remove %v", got)
	}
	s.Remove(b)
	if s.Active() != nil {
		t.Fatal("an emptied set is not nil: the datapath would pay more than one load")
	}
}

func TestSelection(t *testing.T) {
	for _, tc := range []struct {
		sel  Selection
		name string
		want bool
	}{
		{Selection{All: true}, "x", true},
		{Selection{Name: "lab"}, "lab", true},
		{Selection{Name: "lab"}, "lab/1", false},
		{Selection{Name: "lab", Prefix: true}, "lab/1", true},
		{Selection{Name: "lab", Prefix: true}, "lab", false},
		{Selection{Name: "lab", Prefix: true}, "lab2/1", false},
		{Selection{Name: "lab", Prefix: true}, "labx", false},
	} {
		if got := tc.sel.Selects(tc.name); got != tc.want {
			t.Errorf("%+v selects %q = %v", tc.sel, tc.name, got)
		}
	}
	if (Selection{All: true}).String() != "all" || (Selection{Name: "a"}).String() != "a" {
		t.Error("String")
	}
}
