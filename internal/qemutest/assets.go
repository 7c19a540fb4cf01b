package qemutest

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	_ "embed"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

//go:embed init.sh
var initScript []byte

//go:embed fetch-kernel.sh
var fetchKernelScript string

// bundledModules are copied into every initramfs together with their
// dependencies. e1000 is the guest NIC; slip (and slhc) are for tests that
// need Linux SLIP in the guest; 8021q (with mrp, garp, stp and llc) for
// tests that give the guest VLAN interfaces (ip link add link eth0 name
// vlan.100 type vlan id 100).
var bundledModules = []string{"e1000", "slip", "8021q"}

const defaultCacheDir = "/var/cache/zswitch-qemutest"

// assets is everything needed to boot, prepared once per test binary.
type assets struct {
	qemu      string
	kernel    string // vmlinux (PVH) or vmlinuz path
	note      string // why kernel is not the fast PVH one, if so
	initramfs string // cached base initramfs path
	cacheDir  string
	// deps maps a bundled module to its dependencies, all bundled.
	deps map[string][]string
}

var (
	prepOnce sync.Once
	prepared *assets
	prepErr  error
)

// prepare finds QEMU and busybox, fetches the kernel if the cache has none
// and builds the base initramfs. It runs once; later calls return the same
// result.
func prepare() (*assets, error) {
	prepOnce.Do(func() {
		prepared, prepErr = doPrepare()
		if prepErr != nil {
			prepErr = fmt.Errorf("qemutest: %w", prepErr)
		}
	})
	return prepared, prepErr
}

func doPrepare() (*assets, error) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, fmt.Errorf("qemu-system-x86_64 not found (apt-get install qemu-system-x86, or run .ci/qemu-deps.sh): %w", err)
	}
	busybox, err := findStaticBusybox()
	if err != nil {
		return nil, err
	}
	cache, err := cacheDir()
	if err != nil {
		return nil, err
	}
	kdir, err := findKernel(cache)
	if err != nil {
		if err := fetchKernel(cache); err != nil {
			return nil, err
		}
		if kdir, err = findKernel(cache); err != nil {
			return nil, err
		}
	}
	vmlinuz, moddir, err := kernelFiles(kdir)
	if err != nil {
		return nil, err
	}
	kernel, note := vmlinuz, ""
	if pvh, err := pvhKernel(vmlinuz); err == nil {
		kernel = pvh
	} else {
		note = fmt.Sprintf("booting the compressed kernel, which is slower: %v", err)
	}
	mods, deps, err := collectModules(moddir, bundledModules)
	if err != nil {
		return nil, err
	}
	bb, err := os.ReadFile(busybox)
	if err != nil {
		return nil, err
	}
	path, err := writeCached(cache, "initramfs", baseInitramfs(bb, mods))
	if err != nil {
		return nil, err
	}
	return &assets{qemu: qemu, kernel: kernel, note: note, initramfs: path, cacheDir: cache, deps: deps}, nil
}

// cacheDir returns $ZSWITCH_QEMU_CACHE or the default, creating it. Without
// the rights for /var/cache it falls back to the user's cache directory.
func cacheDir() (string, error) {
	if d := os.Getenv("ZSWITCH_QEMU_CACHE"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("cache dir: %w", err)
		}
		return d, nil
	}
	if err := os.MkdirAll(defaultCacheDir, 0o755); err == nil && isWritable(defaultCacheDir) {
		return defaultCacheDir, nil
	}
	uc, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: %s not writable and no user cache dir: %w", defaultCacheDir, err)
	}
	d := filepath.Join(uc, "zswitch-qemutest")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return "", fmt.Errorf("cache dir: %w", err)
	}
	return d, nil
}

func isWritable(dir string) bool {
	f, err := os.CreateTemp(dir, ".probe")
	if err != nil {
		return false
	}
	f.Close()
	os.Remove(f.Name())
	return true
}

// findStaticBusybox returns a busybox binary that can run without a libc in
// the initramfs (the busybox-static package).
func findStaticBusybox() (string, error) {
	var tried []string
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		dynamic := false
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				dynamic = true
			}
		}
		f.Close()
		if !dynamic {
			return p, nil
		}
		tried = append(tried, p+" (dynamically linked)")
	}
	return "", fmt.Errorf("no statically linked busybox found %v (apt-get install busybox-static)", tried)
}

// findKernel returns the newest complete kernel tree in the cache.
func findKernel(cache string) (string, error) {
	marks, _ := filepath.Glob(filepath.Join(cache, "kernel", "*", ".complete"))
	if len(marks) == 0 {
		return "", fmt.Errorf("no kernel in %s (run .ci/qemu-deps.sh)", filepath.Join(cache, "kernel"))
	}
	sort.Strings(marks)
	return filepath.Dir(marks[len(marks)-1]), nil
}

// fetchKernel runs the embedded fetch-kernel.sh (the script CI runs through
// .ci/qemu-deps.sh), which downloads the Debian kernel with apt-get.
func fetchKernel(cache string) error {
	for _, tool := range []string{"bash", "flock", "apt-get", "apt-cache", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("no kernel cached in %s and cannot fetch one: %w", cache, err)
		}
	}
	cmd := exec.Command("bash", "-c", fetchKernelScript, "fetch-kernel.sh")
	cmd.Env = append(os.Environ(), "ZSWITCH_QEMU_CACHE="+cache)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("fetch kernel into %s: %w\n%s", cache, err, out)
	}
	return nil
}

// kernelFiles locates vmlinuz and the module directory in an unpacked
// linux-image package.
func kernelFiles(kdir string) (vmlinuz, moddir string, err error) {
	vms, _ := filepath.Glob(filepath.Join(kdir, "boot", "vmlinuz-*"))
	if len(vms) != 1 {
		return "", "", fmt.Errorf("kernel %s: want one boot/vmlinuz-*, found %d", kdir, len(vms))
	}
	vmlinuz = vms[0]
	release := strings.TrimPrefix(filepath.Base(vmlinuz), "vmlinuz-")
	moddir = filepath.Join(kdir, "lib", "modules", release)
	if _, err := os.Stat(moddir); err != nil {
		return "", "", fmt.Errorf("kernel %s: %w", kdir, err)
	}
	return vmlinuz, moddir, nil
}

// pvhKernel returns the uncompressed ELF kernel next to vmlinuz, extracting
// it on first use. QEMU boots such a kernel through its PVH entry point,
// which skips the firmware's real-mode setup and the in-guest decompression:
// under TCG that halves the boot time (about 5 s to 2.5 s).
func pvhKernel(vmlinuz string) (string, error) {
	out := filepath.Join(filepath.Dir(filepath.Dir(vmlinuz)), "vmlinux-pvh")
	if hasPVHNote(out) {
		return out, nil
	}
	img, err := os.ReadFile(vmlinuz)
	if err != nil {
		return "", err
	}
	// bzImage header: setup_sects at 0x1f1; payload_offset/length at
	// 0x248/0x24c, relative to the protected-mode code after the setup.
	if len(img) < 0x250 || string(img[0x202:0x206]) != "HdrS" {
		return "", fmt.Errorf("%s: not a bzImage", vmlinuz)
	}
	setup := (int(img[0x1f1]) + 1) * 512
	off := setup + int(binary.LittleEndian.Uint32(img[0x248:]))
	n := int(binary.LittleEndian.Uint32(img[0x24c:]))
	if off+n > len(img) {
		return "", fmt.Errorf("%s: bad payload bounds", vmlinuz)
	}
	payload := img[off : off+n]
	if !bytes.HasPrefix(payload, []byte{0x1f, 0x8b}) && len(payload) > 4 {
		// Except for gzip, kbuild appends the uncompressed size (4 bytes),
		// which xz and zstd would reject as trailing garbage.
		payload = payload[:len(payload)-4]
	}
	elfImg, err := decompress(payload, vmlinuz)
	if err != nil {
		return "", err
	}
	if _, err := writeAtomic(out, elfImg); err != nil {
		return "", err
	}
	if !hasPVHNote(out) {
		return "", fmt.Errorf("%s: no PVH entry note", out)
	}
	return out, nil
}

// hasPVHNote reports whether path is an ELF kernel with the Xen
// PHYS32_ENTRY note that QEMU needs to boot it directly.
func hasPVHNote(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	const xenElfnotePhys32Entry = 18
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		b, err := io.ReadAll(p.Open())
		if err != nil {
			return false
		}
		for len(b) >= 12 {
			namesz := int(binary.LittleEndian.Uint32(b))
			descsz := int(binary.LittleEndian.Uint32(b[4:]))
			typ := binary.LittleEndian.Uint32(b[8:])
			nameEnd := 12 + (namesz+3)&^3
			end := nameEnd + (descsz+3)&^3
			if end > len(b) {
				break
			}
			if typ == xenElfnotePhys32Entry && string(bytes.TrimRight(b[12:12+namesz], "\x00")) == "Xen" {
				return true
			}
			b = b[end:]
		}
	}
	return false
}

// decompress undoes the kernel's or a module's compression, detected by
// magic number; gzip is in the stdlib, xz and zstd need their tools.
func decompress(data []byte, what string) ([]byte, error) {
	var tool string
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		return io.ReadAll(zr)
	case bytes.HasPrefix(data, []byte("\xfd7zXZ\x00")):
		tool = "xz"
	case bytes.HasPrefix(data, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		tool = "zstd"
	default:
		return nil, fmt.Errorf("%s: unknown compression", what)
	}
	cmd := exec.Command(tool, "-dc")
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %s -dc: %w: %s", what, tool, err, stderr.Bytes())
	}
	return out, nil
}

// collectModules returns the named modules and their transitive dependencies
// as uncompressed .ko images keyed by module name, plus each module's direct
// dependencies. Dependencies come from the modules' own .modinfo "depends="
// field, because Debian's package ships no modules.dep (depmod generates it
// at install time).
func collectModules(moddir string, names []string) (map[string][]byte, map[string][]string, error) {
	index := map[string]string{}
	err := filepath.WalkDir(filepath.Join(moddir, "kernel"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if name, ok := moduleName(d.Name()); ok && !d.IsDir() {
			index[name] = path
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("index modules in %s: %w", moddir, err)
	}
	mods := map[string][]byte{}
	deps := map[string][]string{}
	var add func(name string) error
	add = func(name string) error {
		if _, ok := mods[name]; ok {
			return nil
		}
		path, ok := index[name]
		if !ok {
			return fmt.Errorf("module %s not found under %s", name, moddir)
		}
		img, err := readModule(path)
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		d, err := moduleDepends(img)
		if err != nil {
			return fmt.Errorf("module %s: %w", name, err)
		}
		mods[name], deps[name] = img, d
		for _, dep := range d {
			if err := add(dep); err != nil {
				return err
			}
		}
		return nil
	}
	for _, n := range names {
		if err := add(normModName(n)); err != nil {
			return nil, nil, err
		}
	}
	return mods, deps, nil
}

// moduleName maps "e1000.ko", "e1000.ko.xz" etc. to the module name.
func moduleName(file string) (string, bool) {
	for _, ext := range []string{".ko", ".ko.xz", ".ko.zst", ".ko.gz"} {
		if base, ok := strings.CutSuffix(file, ext); ok {
			return normModName(base), true
		}
	}
	return "", false
}

func normModName(n string) string { return strings.ReplaceAll(n, "-", "_") }

// readModule returns the uncompressed module. Debian 12 ships plain .ko, but
// newer kernels compress modules; decompressing here means busybox insmod
// never needs to (nor the guest kernel's CONFIG_MODULE_DECOMPRESS).
func readModule(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil || strings.HasSuffix(path, ".ko") {
		return raw, err
	}
	return decompress(raw, path)
}

// moduleDepends reads "depends=" from the module's .modinfo ELF section.
func moduleDepends(img []byte) ([]string, error) {
	f, err := elf.NewFile(bytes.NewReader(img))
	if err != nil {
		return nil, err
	}
	sec := f.Section(".modinfo")
	if sec == nil {
		return nil, errors.New("no .modinfo section")
	}
	info, err := sec.Data()
	if err != nil {
		return nil, err
	}
	var deps []string
	for kv := range bytes.SplitSeq(info, []byte{0}) {
		if v, ok := bytes.CutPrefix(kv, []byte("depends=")); ok {
			for d := range strings.SplitSeq(string(v), ",") {
				if d != "" {
					deps = append(deps, normModName(d))
				}
			}
		}
	}
	return deps, nil
}

// loadOrder returns names and their dependencies, dependencies first.
func loadOrder(deps map[string][]string, names []string) ([]string, error) {
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("module dependency cycle at %s", n)
		case 2:
			return nil
		}
		d, ok := deps[n]
		if !ok {
			return fmt.Errorf("module %s is not in the initramfs (bundled: %v)", n, bundledModules)
		}
		state[n] = 1
		for _, x := range d {
			if err := visit(x); err != nil {
				return err
			}
		}
		state[n] = 2
		order = append(order, n)
		return nil
	}
	for _, n := range names {
		if err := visit(normModName(n)); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// baseInitramfs builds the uncompressed newc archive shared by all guests:
// busybox, /init and the bundled modules as /lib/modules/<name>.ko.
// Uncompressed because the guest unpacks it faster than it would inflate it
// under TCG.
func baseInitramfs(busybox []byte, mods map[string][]byte) []byte {
	var w cpioWriter
	for _, d := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "run", "root", "etc", "lib", "lib/modules"} {
		w.dir(d)
	}
	// The kernel opens /dev/console for init's stdio before /init mounts
	// devtmpfs, so the node must be in the archive.
	w.node("dev/console", 0o020600, 5, 1)
	w.file("bin/busybox", 0o755, busybox)
	w.symlink("bin/sh", "busybox")
	w.file("init", 0o755, initScript)
	w.file("etc/hostname", 0o644, []byte("qemutest\n"))
	names := make([]string, 0, len(mods))
	for n := range mods {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w.file("lib/modules/"+n+".ko", 0o644, mods[n])
	}
	return w.finish()
}

// extraInitramfs builds an archive of host files (guest path -> host path)
// to append to the base one; the kernel unpacks concatenated archives in
// order.
func extraInitramfs(files map[string]string) ([]byte, error) {
	var w cpioWriter
	guests := make([]string, 0, len(files))
	for g := range files {
		guests = append(guests, g)
	}
	sort.Strings(guests)
	made := map[string]bool{}
	for _, g := range guests {
		rel := strings.TrimPrefix(filepath.Clean("/"+g), "/")
		if rel == "" {
			return nil, fmt.Errorf("files: bad guest path %q", g)
		}
		// Parents must precede their entries; existing directories are
		// left alone by the kernel.
		parts := strings.Split(rel, "/")
		for i := 1; i < len(parts); i++ {
			if p := strings.Join(parts[:i], "/"); !made[p] {
				made[p] = true
				w.dir(p)
			}
		}
		host := files[g]
		st, err := os.Stat(host)
		if err != nil {
			return nil, fmt.Errorf("files: %w", err)
		}
		data, err := os.ReadFile(host)
		if err != nil {
			return nil, fmt.Errorf("files: %w", err)
		}
		w.file(rel, uint32(st.Mode().Perm()), data)
	}
	return w.finish(), nil
}

// writeCached stores data as <cache>/initramfs/<prefix>-<sha256>.cpio
// unless it exists, and returns the path.
func writeCached(cache, prefix string, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	path := filepath.Join(cache, "initramfs", prefix+"-"+hex.EncodeToString(sum[:12])+".cpio")
	if st, err := os.Stat(path); err == nil && st.Size() == int64(len(data)) {
		return path, nil
	}
	return writeAtomic(path, data)
}

// writeAtomic writes path via a temporary file and rename, so concurrent
// test binaries never see a partial file.
func writeAtomic(path string, data []byte) (string, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("cache: %w", err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	err = errors.Join(werr, cerr)
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("cache: %w", err)
	}
	return path, nil
}

// cpioWriter writes the "newc" format the kernel's initramfs unpacker reads.
// Writing it here avoids needing cpio(1) and root (for /dev/console).
type cpioWriter struct {
	buf bytes.Buffer
	ino uint32
}

func (w *cpioWriter) entry(name string, mode uint32, rdevMajor, rdevMinor uint32, data []byte) {
	w.ino++
	nlink := uint32(1)
	if mode&0o170000 == 0o040000 {
		nlink = 2
	}
	fmt.Fprintf(&w.buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		w.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	w.buf.WriteString(name)
	w.buf.WriteByte(0)
	w.pad()
	w.buf.Write(data)
	w.pad()
}

func (w *cpioWriter) pad() {
	for w.buf.Len()%4 != 0 {
		w.buf.WriteByte(0)
	}
}

func (w *cpioWriter) dir(name string) { w.entry(name, 0o040755, 0, 0, nil) }
func (w *cpioWriter) file(name string, perm uint32, data []byte) {
	w.entry(name, 0o100000|perm, 0, 0, data)
}
func (w *cpioWriter) symlink(name, target string) { w.entry(name, 0o120777, 0, 0, []byte(target)) }
func (w *cpioWriter) node(name string, mode, major, minor uint32) {
	w.entry(name, mode, major, minor, nil)
}

func (w *cpioWriter) finish() []byte {
	w.entry("TRAILER!!!", 0, 0, 0, nil)
	return w.buf.Bytes()
}
