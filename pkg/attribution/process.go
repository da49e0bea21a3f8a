package attribution

import "github.com/ds01-project/ds01/pkg/detect"

// User sources for processes.
const (
	SourceProcessRealUID  = "process_uid"
	SourceProcessLoginUID = "process_loginuid"
	SourceSessionSlice    = "process_session_slice"
)

// Process attributes a process: its real uid; when that is root, the login
// uid (which survives sudo and su); then the user-<uid>.slice of its
// systemd session; then root.
func (a *Attributor) Process(p detect.ProcessInfo) Result {
	if p.UID != 0 {
		return Result{User: a.users.Name(p.UID), Source: SourceProcessRealUID}
	}
	if p.LoginUID != nil && *p.LoginUID != 0 {
		return Result{User: a.users.Name(*p.LoginUID), Source: SourceProcessLoginUID}
	}
	if uid, ok := detect.SessionUID(p.Cgroup); ok && uid != 0 {
		return Result{User: a.users.Name(uid), Source: SourceSessionSlice}
	}
	return Result{User: "root", Source: SourceProcessRealUID}
}
