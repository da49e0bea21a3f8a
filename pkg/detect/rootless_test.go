package detect

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// listen makes a Unix socket at path, owned by uid, that accepts and
// closes connections until the test ends.
func listen(t *testing.T, path string, uid int) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := os.Lchown(path, uid, uid); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(strings.Repeat("x", 100)))
			c.Close()
		}
	}()
}

func TestFindRootlessEngines(t *testing.T) {
	requireRoot(t)
	run := t.TempDir()
	dir := func(name string, uid int) string {
		d := filepath.Join(run, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, uid); err != nil {
			t.Fatal(err)
		}
		return d
	}
	listen(t, filepath.Join(dir("4242", 4242), RootlessSocketName), 4242)
	// Another user's socket in this user's directory.
	listen(t, filepath.Join(dir("4243", 4243), RootlessSocketName), 4244)
	// A link to the system's socket.
	os.Symlink("/var/run/docker.sock", filepath.Join(dir("4245", 4245), RootlessSocketName))
	// A regular file where the socket should be.
	os.WriteFile(filepath.Join(dir("4246", 4246), RootlessSocketName), nil, 0o600)
	os.Chown(filepath.Join(run, "4246", RootlessSocketName), 4246, 4246)
	// A directory owned by someone else than its name says.
	listen(t, filepath.Join(dir("4247", 0), RootlessSocketName), 4247)
	// A link in place of a runtime directory.
	os.Symlink(filepath.Join(run, "4242"), filepath.Join(run, "4248"))
	// Names that are not uids.
	listen(t, filepath.Join(dir("04242", 4242), RootlessSocketName), 4242)
	listen(t, filepath.Join(dir("0", 0), RootlessSocketName), 0)

	got := FindRootlessEngines(run)
	want := []RootlessSocket{{Path: filepath.Join(run, "4242", RootlessSocketName), UID: 4242}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("FindRootlessEngines = %+v; want %+v", got, want)
	}
	if got := FindRootlessEngines(filepath.Join(run, "missing")); got != nil {
		t.Errorf("FindRootlessEngines(missing) = %+v; want none", got)
	}
}

// TestDialOwned: a socket answered by a process of another uid than the
// one expected is refused, whatever the path led to; the expected one is
// connected, and reads stop at the cap.
func TestDialOwned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "engine.sock")
	listen(t, path, os.Geteuid())
	ctx := context.Background()

	if _, err := DialOwned(ctx, path, os.Geteuid()+1, 1<<20); !errors.Is(err, ErrEngineNotOwned) {
		t.Errorf("DialOwned as another uid: %v; want ErrEngineNotOwned", err)
	}
	c, err := DialOwned(ctx, path, os.Geteuid(), 10)
	if err != nil {
		t.Fatalf("DialOwned as the listener's uid: %v", err)
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	if len(b) != 10 || !errors.Is(err, ErrAnswerTooLarge) {
		t.Errorf("read %d bytes, %v; want 10 and ErrAnswerTooLarge", len(b), err)
	}
	if _, err := DialOwned(ctx, filepath.Join(t.TempDir(), "none.sock"), os.Geteuid(), 10); err == nil {
		t.Error("DialOwned to no socket succeeded")
	}
}

func TestParseNamespaceLink(t *testing.T) {
	for in, want := range map[string]uint64{
		"pid:[4026531836]": 4026531836,
		"pid:[0]":          0,
		"net:[4026531840]": 0,
		"pid:[x]":          0,
		"pid:[12":          0,
	} {
		got, err := parseNamespaceLink(in)
		if got != want || (err == nil) != (want != 0) {
			t.Errorf("parseNamespaceLink(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
