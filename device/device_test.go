package device

import "testing"

func TestParseAndString(t *testing.T) {
	for in, want := range map[string]string{
		"": "cpu", "cpu": "cpu", "cuda": "cuda:0", "cuda:0": "cuda:0", "cuda:3": "cuda:3",
		"auto": "auto", "auto:0": "auto", "auto:2": "auto:2",
	} {
		d, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if got := d.String(); got != want {
			t.Errorf("Parse(%q).String() = %q, want %q", in, got, want)
		}
		if back, err := Parse(d.String()); err != nil || back != d {
			t.Errorf("Parse(%q) = %+v does not read back from %q: %+v, %v", in, d, d.String(), back, err)
		}
	}
	if a, b := mustParse(t, "cuda"), mustParse(t, "cuda:0"); a != b {
		t.Errorf("cuda = %+v and cuda:0 = %+v differ", a, b)
	}
	for _, in := range []string{"gpu", "cuda:", "cuda:-1", "cuda:01", "cuda:+1", "CPU", "cuda:x", "auto:"} {
		if d, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", in, d)
		}
	}
}

func mustParse(t *testing.T, s string) Device {
	t.Helper()
	d, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
