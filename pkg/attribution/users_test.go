package attribution

import (
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"testing"
)

// hostUser is a real user made with useradd for one test.
type hostUser struct {
	Name string
	UID  int
	GID  int
	Home string
}

// requireRoot skips a test that must create real users, loudly, unless CI
// is set: there a skip would hide that the tests never ran.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	const msg = "NOT RUN: this test creates real users with useradd and needs root; run `sudo go test ./pkg/attribution`"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: a skip here would hide that it never ran)")
	}
	t.Skip(msg)
}

// addUser creates a real host user for the test, with its home directory
// when withHome, and removes it (home included) when the test ends,
// whether it passed or not.
func addUser(t *testing.T, name string, withHome bool) hostUser {
	t.Helper()
	requireRoot(t)
	if _, err := user.Lookup(name); err == nil {
		// Left by a run that was killed before its cleanup ran.
		t.Logf("removing user %s left over from an earlier run", name)
		if out, err := exec.Command("userdel", "-r", name).CombinedOutput(); err != nil {
			t.Fatalf("userdel -r %s: %v: %s", name, err, out)
		}
	}
	args := []string{"-M"}
	if withHome {
		args = []string{"-m"}
	}
	args = append(args, "-s", "/usr/sbin/nologin", name)
	if out, err := exec.Command("useradd", args...).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v: %s", strings.Join(args, " "), err, out)
	}
	t.Cleanup(func() { delUser(t, name) })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatalf("look up the user just made: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 {
		t.Fatalf("useradd gave %s uid 0", name)
	}
	return hostUser{Name: name, UID: uid, GID: gid, Home: u.HomeDir}
}

// delUser removes a test user and its home; a user already gone is fine.
func delUser(t *testing.T, name string) {
	t.Helper()
	if _, err := user.Lookup(name); err != nil {
		return
	}
	if out, err := exec.Command("userdel", "-r", name).CombinedOutput(); err != nil {
		t.Errorf("userdel -r %s: %v: %s", name, err, out)
	}
}

// absentUID returns a uid no host user has.
func absentUID(t *testing.T) int {
	t.Helper()
	const uid = 4000000
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		t.Fatalf("uid %d belongs to %s on this host; pick another", uid, u.Username)
	}
	return uid
}

func TestUsersName(t *testing.T) {
	alice := addUser(t, "ds01t-alice", false)
	absent := absentUID(t)
	tests := []struct {
		name string
		uid  int
		want string
	}{
		{"real user", alice.UID, alice.Name},
		{"root", 0, "root"},
		{"no such uid", absent, "uid:" + strconv.Itoa(absent)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := NewUsers("").Name(tc.uid); got != tc.want {
				t.Errorf("Name(%d) = %q, want %q", tc.uid, got, tc.want)
			}
		})
	}
}

func TestUsersUID(t *testing.T) {
	alice := addUser(t, "ds01t-alice", false)
	tests := []struct {
		name   string
		user   string
		want   int
		wantOK bool
	}{
		{"real user", alice.Name, alice.UID, true},
		{"root", "root", 0, true},
		{"no such user", "no-such-user-xyz", -1, false},
		{"empty", "", -1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := NewUsers("").UID(tc.user)
			if ok != tc.wantOK || ok && got != tc.want {
				t.Errorf("UID(%q) = %d, %v; want %d, %v", tc.user, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// TestUsersCached: answers hold for the life of one Users, even when the
// user database changes under it; a fresh Users sees the change, which
// shows the change happened.
func TestUsersCached(t *testing.T) {
	alice := addUser(t, "ds01t-alice", false)
	carol := "ds01t-carol"
	delUser(t, carol)

	u := NewUsers("")
	if got := u.Name(alice.UID); got != alice.Name {
		t.Fatalf("Name(%d) = %q, want %q", alice.UID, got, alice.Name)
	}
	if got, ok := u.UID(alice.Name); !ok || got != alice.UID {
		t.Fatalf("UID(%q) = %d, %v; want %d, true", alice.Name, got, ok, alice.UID)
	}
	if _, ok := u.UID(carol); ok {
		t.Fatalf("UID(%q) found a user that does not exist", carol)
	}

	delUser(t, alice.Name)
	c := addUser(t, carol, false)

	if got := u.Name(alice.UID); got != alice.Name {
		t.Errorf("second Name(%d) = %q, want the cached %q", alice.UID, got, alice.Name)
	}
	if got, ok := u.UID(alice.Name); !ok || got != alice.UID {
		t.Errorf("second UID(%q) = %d, %v; want the cached %d, true", alice.Name, got, ok, alice.UID)
	}
	if got, ok := u.UID(carol); ok {
		t.Errorf("second UID(%q) = %d, true; want the cached miss", carol, got)
	}

	fresh := NewUsers("")
	if _, ok := fresh.UID(alice.Name); ok {
		t.Errorf("fresh UID(%q) found the deleted user: the cache test above proves nothing", alice.Name)
	}
	if got, ok := fresh.UID(carol); !ok || got != c.UID {
		t.Errorf("fresh UID(%q) = %d, %v; want %d, true", carol, got, ok, c.UID)
	}
}
