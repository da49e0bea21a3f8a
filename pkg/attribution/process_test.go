package attribution

import (
	"log/slog"
	"strconv"
	"testing"

	"github.com/ds01-project/ds01/pkg/detect"
)

// TestProcessSignals: real uid first; for root, the login uid (survives
// sudo); then the user-<uid>.slice session; then root.
func TestProcessSignals(t *testing.T) {
	alice := addUser(t, "ds01t-palice", false)
	bob := addUser(t, "ds01t-pbob", false)
	slice := func(uid string) []detect.CgroupLine {
		return detect.ParseCgroupFile([]byte("0::/user.slice/user-" + uid + ".slice/session-3.scope\n"))
	}
	ptr := func(n int) *int { return &n }
	a := New(NewUsers(""), detect.NewProcfs("/proc"), slog.New(slog.DiscardHandler))
	tests := []struct {
		name string
		p    detect.ProcessInfo
		want Result
	}{
		{"non-root real uid", detect.ProcessInfo{UID: alice.UID, LoginUID: ptr(bob.UID)}, Result{alice.Name, SourceProcessRealUID}},
		{"root with a login uid (sudo)", detect.ProcessInfo{UID: 0, LoginUID: ptr(bob.UID), Cgroup: slice("1")}, Result{bob.Name, SourceProcessLoginUID}},
		{"root, login uid 0, session slice", detect.ProcessInfo{UID: 0, LoginUID: ptr(0), Cgroup: slice(itoa(alice.UID))}, Result{alice.Name, SourceSessionSlice}},
		{"root, no login uid, session slice", detect.ProcessInfo{UID: 0, Cgroup: slice(itoa(alice.UID))}, Result{alice.Name, SourceSessionSlice}},
		{"root only", detect.ProcessInfo{UID: 0, Cgroup: slice("0")}, Result{"root", SourceProcessRealUID}},
		{"uid without a name", detect.ProcessInfo{UID: 3999999}, Result{"uid:3999999", SourceProcessRealUID}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := a.Process(tc.p); got != tc.want {
				t.Errorf("Process = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
