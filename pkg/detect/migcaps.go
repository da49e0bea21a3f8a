package detect

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// migMinorsFile lists, under the procfs root, the minor number of each MIG
// capability device (/dev/nvidia-caps/nvidia-cap<N>): lines such as
// "gpu0/gi1/access 12" and "gpu0/gi1/ci0/access 13", gpu<M> naming the GPU
// by its minor number.
const migMinorsFile = "driver/nvidia-caps/mig-minors"

// maxMIGMinorsSize bounds the file read: a driver lists a few thousand
// lines at most.
const maxMIGMinorsSize = 1 << 20

// MIGCap is the MIG instance a capability device grants: the GPU (by minor
// number), its GPU instance and, for a compute instance's node, that.
type MIGCap struct {
	GPUMinor, GI int
	// CI is -1 for a GPU instance's own access node.
	CI int
}

// MIGCaps reads which MIG instance each capability device minor grants. A
// machine without MIG capability devices (no NVIDIA driver, or one before
// R450) has no such file: nil and no error.
func (p *Procfs) MIGCaps() (map[int]MIGCap, error) {
	root, err := os.OpenRoot(p.root)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	f, err := root.Open(migMinorsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxMIGMinorsSize+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", migMinorsFile, err)
	case len(data) > maxMIGMinorsSize:
		return nil, fmt.Errorf("read %s: larger than %d bytes", migMinorsFile, maxMIGMinorsSize)
	}
	return ParseMIGMinors(data), nil
}

// ParseMIGMinors parses mig-minors; lines it does not understand (config,
// monitor, junk) are skipped.
func ParseMIGMinors(data []byte) map[int]MIGCap {
	out := map[int]MIGCap{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		path, minorText, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		minor, err := strconv.Atoi(strings.TrimSpace(minorText))
		if !ok || err != nil || minor < 0 {
			continue
		}
		parts := strings.Split(path, "/")
		if len(parts) < 3 || parts[len(parts)-1] != "access" {
			continue
		}
		c := MIGCap{CI: -1}
		var okGPU, okGI bool
		c.GPUMinor, okGPU = numberAfter(parts[0], "gpu")
		c.GI, okGI = numberAfter(parts[1], "gi")
		switch {
		case !okGPU || !okGI:
			continue
		case len(parts) == 4:
			ci, okCI := numberAfter(parts[2], "ci")
			if !okCI {
				continue
			}
			c.CI = ci
		case len(parts) != 3:
			continue
		}
		out[minor] = c
	}
	return out
}

func numberAfter(s, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || !isDigits(rest) {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}

// SetMIGCapMinors records on each MIG instance of gpus the capability
// device minors that name it: its compute instance's access node, and its
// GPU instance's when that holds no other compute instance. The MIG
// instance's GPU is found by minor number.
func SetMIGCapMinors(gpus []inventory.GPUDevice, caps map[int]MIGCap) {
	if len(caps) == 0 {
		return
	}
	minorOf := map[string]int{}
	for _, g := range gpus {
		if g.Parent == "" && g.MinorNumber != nil {
			minorOf[g.ID] = *g.MinorNumber
		}
	}
	type giKey struct{ gpu, gi int }
	perGI := map[giKey]int{}
	for i := range gpus {
		g := &gpus[i]
		if m, ok := minorOf[g.Parent]; ok && g.GPUInstanceID != nil {
			perGI[giKey{m, *g.GPUInstanceID}]++
		}
	}
	for i := range gpus {
		g := &gpus[i]
		m, ok := minorOf[g.Parent]
		if !ok || g.GPUInstanceID == nil || g.ComputeInstanceID == nil {
			continue
		}
		g.CapMinors = nil
		for minor, c := range caps {
			if c.GPUMinor != m || c.GI != *g.GPUInstanceID {
				continue
			}
			if c.CI == *g.ComputeInstanceID || c.CI == -1 && perGI[giKey{m, c.GI}] == 1 {
				g.CapMinors = append(g.CapMinors, minor)
			}
		}
		slices.Sort(g.CapMinors)
	}
}
