package attribution

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"syscall"
	"testing"

	"github.com/ds01-project/ds01/pkg/detect"
)

func TestParseSubIDs(t *testing.T) {
	data := "alice:100000:65536\n" +
		"1001:165536:65536\r\n" +
		"  bob:231072:65536  \n" +
		"\n" +
		"# a comment is not a line\n" +
		"carol:1:2:3\n" +
		"dave:x:65536\n" +
		"erin:300000:0\n" +
		"frank:18446744073709551615:2\n" +
		"gr ace:400000:10\n" +
		"he\x1bidi:400000:10\n" +
		":500000:10\n" +
		"ivan:-1:10\n" +
		"judy:600000:10"
	want := []SubIDRange{
		{"alice", 100000, 65536}, {"1001", 165536, 65536}, {"bob", 231072, 65536}, {"judy", 600000, 10},
	}
	if got := ParseSubIDs([]byte(data)); !reflect.DeepEqual(got, want) {
		t.Errorf("ParseSubIDs:\n got %+v\nwant %+v", got, want)
	}
	for _, tc := range []struct {
		id    uint64
		owner string
		ok    bool
	}{
		{99999, "", false}, {100000, "alice", true}, {165535, "alice", true}, {165536, "1001", true},
		{231071, "1001", true}, {600009, "judy", true}, {600010, "", false},
	} {
		if owner, ok := subOwner(want, tc.id); owner != tc.owner || ok != tc.ok {
			t.Errorf("subOwner(%d) = %q, %v; want %q, %v", tc.id, owner, ok, tc.owner, tc.ok)
		}
	}
}

func FuzzParseSubIDs(f *testing.F) {
	f.Add([]byte("alice:100000:65536\nbob:165536:65536\n"))
	f.Add([]byte("x:18446744073709551615:1\n:1:1\na:b:c"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, r := range ParseSubIDs(data) {
			if r.Owner == "" || r.Count == 0 || r.Start+r.Count < r.Start {
				t.Fatalf("parsed a range it should have skipped: %+v", r)
			}
		}
	})
}

// TestSubordinateOwner: a real process running as a uid of a real user's
// subordinate range is that user's, said as such; a uid with a name of its
// own keeps it even inside a range; an owner written as a uid is named; no
// file, or one that is a link, gives nothing.
func TestSubordinateOwner(t *testing.T) {
	alice := addUser(t, "ds01t-subalice", false)
	bob := addUser(t, "ds01t-subbob", false)
	dir := t.TempDir()
	subuid := filepath.Join(dir, "subuid")
	data := alice.Name + ":300000:65536\n" + strconv.Itoa(bob.UID) + ":400000:65536\n" +
		// A range over a named uid (a mistake an admin can make).
		"ds01t-nobody:" + strconv.Itoa(bob.UID) + ":1\n"
	if err := os.WriteFile(subuid, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 301000, Gid: 301000}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	procfs := detect.NewProcfs("/proc")
	info, err := procfs.Process(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	a := New(NewUsers(subuid), procfs, slog.New(slog.DiscardHandler))
	if got, want := a.Process(info), (Result{alice.Name, SourceSubUIDOwner}); got != want {
		t.Errorf("a process as uid 301000: %+v, want %+v", got, want)
	}
	if got, want := a.processUser(cmd.Process.Pid), (Result{alice.Name, SourceSubUIDOwner}); got != want {
		t.Errorf("a container whose main process is uid 301000: %+v, want %+v", got, want)
	}
	for _, tc := range []struct {
		uid  int
		want Result
	}{
		{400123, Result{bob.Name, SourceSubUIDOwner}},
		{bob.UID, Result{bob.Name, SourceProcessRealUID}},
		{500000, Result{"uid:500000", SourceProcessRealUID}},
	} {
		if got := a.Process(detect.ProcessInfo{UID: tc.uid}); got != tc.want {
			t.Errorf("uid %d: %+v, want %+v", tc.uid, got, tc.want)
		}
	}

	link := filepath.Join(dir, "link")
	if err := os.Symlink(subuid, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"", filepath.Join(dir, "absent"), link} {
		if got := New(NewUsers(path), procfs, slog.New(slog.DiscardHandler)).Process(detect.ProcessInfo{UID: 301000}); got.Source != SourceProcessRealUID {
			t.Errorf("subuid file %q: %+v, want the uid itself", path, got)
		}
	}
}
