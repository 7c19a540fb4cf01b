package qemutest

import (
	"bytes"
	"compress/gzip"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestLoadOrder(t *testing.T) {
	deps := map[string][]string{"e1000": nil, "slhc": nil, "slip": {"slhc"}}
	got, err := loadOrder(deps, []string{"e1000", "slip", "slhc"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"e1000", "slhc", "slip"}; !slices.Equal(got, want) {
		t.Errorf("loadOrder = %v, want %v", got, want)
	}
	if _, err := loadOrder(deps, []string{"virtio_net"}); err == nil {
		t.Error("loadOrder of an unbundled module: no error")
	}
}

// TestCpio checks the newc writer against GNU cpio's reader.
func TestCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Skip("cpio not installed")
	}
	var w cpioWriter
	w.dir("bin")
	w.file("bin/x", 0o755, []byte("abc"))
	w.symlink("bin/sh", "x")
	w.node("console", 0o020600, 5, 1)
	cmd := exec.Command("cpio", "-t", "--quiet")
	cmd.Stdin = bytes.NewReader(w.finish())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("cpio -t: %v\n%s", err, out)
	}
	if got, want := strings.Fields(string(out)), []string{"bin", "bin/x", "bin/sh", "console"}; !slices.Equal(got, want) {
		t.Errorf("cpio -t = %v, want %v", got, want)
	}
}

func TestDecompress(t *testing.T) {
	plain := bytes.Repeat([]byte("zswitch module "), 100)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	inputs := map[string][]byte{"gzip": gz.Bytes()}
	for _, tool := range []string{"xz", "zstd"} {
		if _, err := exec.LookPath(tool); err != nil {
			continue
		}
		cmd := exec.Command(tool, "-c")
		cmd.Stdin = bytes.NewReader(plain)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s -c: %v", tool, err)
		}
		inputs[tool] = out
	}
	for name, in := range inputs {
		got, err := decompress(in, name)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("decompress(%s) = %d bytes, %v", name, len(got), err)
		}
	}
}

// TestKernelModules checks the module dependencies read from the real
// kernel's .modinfo (Debian ships no modules.dep).
func TestKernelModules(t *testing.T) {
	a := requireAssets(t)
	if got := a.deps["slip"]; !slices.Equal(got, []string{"slhc"}) {
		t.Errorf("slip depends on %v, want [slhc]", got)
	}
	if _, ok := a.deps["e1000"]; !ok {
		t.Error("e1000 not bundled")
	}
	if got, err := loadOrder(a.deps, []string{"8021q"}); err != nil || len(got) < 2 || got[len(got)-1] != "8021q" {
		t.Errorf("8021q load order = %v, %v; want its dependencies (mrp, garp, ...) first", got, err)
	}
	if !strings.HasSuffix(a.kernel, "vmlinux-pvh") {
		t.Logf("not using the PVH kernel: %s", a.note)
	}
}
