package attribution

import "github.com/ds01-project/ds01/pkg/detect"

// User sources for processes.
const (
	SourceProcessRealUID  = "process_uid"
	SourceProcessLoginUID = "process_loginuid"
	SourceSessionSlice    = "process_session_slice"
	// SourceEngineOwner: the container is one of a user's own (rootless)
	// engine, which runs as that user and whose containers are theirs,
	// whatever their labels claim.
	SourceEngineOwner = "rootless_engine_owner"
)

// EngineOwner attributes a container of the rootless engine uid runs.
func (a *Attributor) EngineOwner(uid int) Result {
	return Result{User: a.users.Name(uid), Source: SourceEngineOwner}
}

// Process attributes a process: its real uid (the owner of its
// subordinate range, for a uid a rootless container maps to); when that is
// root, the login uid (which survives sudo and su); then the
// user-<uid>.slice of its systemd session; then root.
func (a *Attributor) Process(p detect.ProcessInfo) Result {
	if p.UID != 0 {
		return a.uidUser(p.UID, SourceProcessRealUID)
	}
	if p.LoginUID != nil && *p.LoginUID != 0 {
		return Result{User: a.users.Name(*p.LoginUID), Source: SourceProcessLoginUID}
	}
	if uid, ok := detect.SessionUID(p.Cgroup); ok && uid != 0 {
		return Result{User: a.users.Name(uid), Source: SourceSessionSlice}
	}
	return Result{User: "root", Source: SourceProcessRealUID}
}

// uidUser names the user of a process's uid, said by source: the uid's own
// name, or the owner of the subordinate range that holds it.
func (a *Attributor) uidUser(uid int, source string) Result {
	if owner, ok := a.users.SubordinateOwner(uid); ok {
		return Result{User: owner, Source: SourceSubUIDOwner}
	}
	return Result{User: a.users.Name(uid), Source: source}
}
