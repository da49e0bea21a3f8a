// Package attribution decides who a workload belongs to. Signals are tried
// in a fixed order; the first that names a real (non-root) user wins, and the
// result records which signal it was so that an admin can judge it.
package attribution

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ds01-project/ds01/pkg/detect"
	"github.com/ds01-project/ds01/pkg/inventory"
)

// User sources: the signal that named a workload's user, in the order they
// are tried for containers.
const (
	SourceLabelUser          = "label:ds01.user"
	SourceLabelDetectedUser  = "label:ds01.detected.user"
	SourceLabelAIMEUser      = "label:aime.mlc.USER"
	SourceDevcontainerFolder = "devcontainer_folder_owner"
	SourceDevcontainerHome   = "devcontainer_folder_home_path"
	SourceComposeDir         = "compose_working_dir_owner"
	SourceBindMountHome      = "bind_mount_home_owner"
	SourceConfigUser         = "container_config_user"
	SourceProcessUID         = "container_process_uid"
	// SourceNone means no signal named anyone: the user is "unknown".
	SourceNone = "none"
)

// Unknown is the user of a workload no signal could attribute.
const Unknown = "unknown"

// Result is who a workload belongs to and the signal that said so.
type Result struct {
	User   string
	Source string
}

// Attributor runs the ordered signals. Construct it with New.
type Attributor struct {
	users  *Users
	procfs *detect.Procfs
	log    *slog.Logger
}

// New returns an Attributor resolving names with users and reading process
// facts through procfs.
func New(users *Users, procfs *detect.Procfs, log *slog.Logger) *Attributor {
	return &Attributor{users: users, procfs: procfs, log: log}
}

// Container attributes an inspected container. Environment values are never
// read here, so none can leak into the result.
func (a *Attributor) Container(f detect.ContainerFacts) Result {
	var rootSignal *Result
	try := func(user, source string) (Result, bool) {
		if user == "" {
			return Result{}, false
		}
		if user == "root" {
			if rootSignal == nil {
				rootSignal = &Result{User: "root", Source: source}
			}
			return Result{}, false
		}
		return Result{User: user, Source: source}, true
	}
	signals := []func() (Result, bool){
		func() (Result, bool) { return try(labelUser(f.Labels["ds01.user"]), SourceLabelUser) },
		func() (Result, bool) {
			return try(labelUser(f.Labels[detect.LabelDetectedUser]), SourceLabelDetectedUser)
		},
		func() (Result, bool) { return try(labelUser(f.Labels["aime.mlc.USER"]), SourceLabelAIMEUser) },
		func() (Result, bool) {
			dir := f.Labels["devcontainer.local_folder"]
			if r, ok := try(a.dirOwner(dir), SourceDevcontainerFolder); ok {
				return r, ok
			}
			return try(a.homePathUser(dir), SourceDevcontainerHome)
		},
		func() (Result, bool) {
			return try(a.dirOwner(f.Labels["com.docker.compose.project.working_dir"]), SourceComposeDir)
		},
		func() (Result, bool) {
			for _, src := range f.BindSources {
				if home := homeDirOf(src); home != "" {
					if r, ok := try(a.dirOwner(home), SourceBindMountHome); ok {
						return r, ok
					}
				}
			}
			return Result{}, false
		},
		func() (Result, bool) { return try(a.configUser(f.ConfigUser), SourceConfigUser) },
		func() (Result, bool) {
			r := a.processUser(f.PID)
			return try(r.User, r.Source)
		},
	}
	for _, s := range signals {
		if r, ok := s(); ok {
			return r
		}
	}
	if rootSignal != nil {
		return *rootSignal
	}
	return Result{User: Unknown, Source: SourceNone}
}

// labelUser accepts a label value as a user name only if it looks like one:
// a label is free text any container creator sets.
func labelUser(v string) string {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 64 || !utf8.ValidString(v) {
		return ""
	}
	for _, r := range v {
		if r <= ' ' || unicode.IsControl(r) || !unicode.IsPrint(r) || r == '/' || r == ':' && !strings.HasPrefix(v, "uid:") {
			return ""
		}
	}
	return v
}

// dirOwner returns the owner of an absolute directory path. It uses lstat:
// a symbolic link is never followed, so a link planted by one user cannot
// attribute a container to another.
func (a *Attributor) dirOwner(path string) string {
	if path == "" || !filepath.IsAbs(path) || len(path) > 4096 {
		return ""
	}
	st, err := os.Lstat(filepath.Clean(path))
	if err != nil || !st.IsDir() {
		return ""
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return a.users.Name(int(sys.Uid))
}

// homePathUser names the user of a /home/<user>/… path when that user
// exists: the folder may live on another machine (a remote Docker context),
// so its owner cannot be read here.
func (a *Attributor) homePathUser(path string) string {
	rest, ok := strings.CutPrefix(filepath.Clean(path), "/home/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	if _, exists := a.users.UID(name); exists {
		return name
	}
	return ""
}

// homeDirOf returns /home/<user> for a path inside it, or "".
func homeDirOf(path string) string {
	rest, ok := strings.CutPrefix(filepath.Clean(path), "/home/")
	if !ok || rest == "" {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return "/home/" + name
}

// configUser interprets Config.User ("1000", "1000:1000", "alice",
// "alice:staff"). A name counts only if it exists on the host: names inside
// an image ("vscode", "jovyan") say nothing about who started it.
func (a *Attributor) configUser(v string) string {
	name, _, _ := strings.Cut(strings.TrimSpace(v), ":")
	if name == "" {
		return ""
	}
	if uid, err := strconv.Atoi(name); err == nil {
		if uid < 0 {
			return ""
		}
		return a.users.Name(uid)
	}
	if _, ok := a.users.UID(name); ok {
		return labelUser(name)
	}
	return ""
}

// processUser returns the host owner (real uid) of the container's main
// process: rootless Docker, user namespaces and --user all show here; a
// subordinate uid is its range's owner's.
func (a *Attributor) processUser(pid int) Result {
	if pid <= 0 {
		return Result{}
	}
	uid, err := a.procfs.UID(pid)
	if err != nil {
		// The container stopped since it was inspected: nothing to say.
		return Result{}
	}
	return a.uidUser(uid, SourceProcessUID)
}

// detectedLabelKeys are the ds01.detected.* labels ds01 defines.
var detectedLabelKeys = []string{
	detect.LabelDetected, detect.LabelDetectedUser, detect.LabelDetected + ".time",
	detect.LabelDetected + ".origin", detect.LabelDetected + ".user_source",
}

// DetectedLabels returns the ds01.detected.* labels for a container: the
// container's own when it already carries them (they are honoured, not
// recomputed), otherwise the ones this scan derived.
func DetectedLabels(own map[string]string, c *inventory.Container, now time.Time) map[string]string {
	if own[detect.LabelDetected] == "true" {
		// Only the labels ds01 defines, each capped like every kept label:
		// a container may carry any number of others under this prefix.
		out := map[string]string{}
		for _, k := range detectedLabelKeys {
			if v, ok := own[k]; ok && len(v) <= detect.MaxLabelValue {
				out[k] = v
			}
		}
		return out
	}
	return map[string]string{
		detect.LabelDetected:                  "true",
		detect.LabelDetectedUser:              c.User,
		detect.LabelDetected + ".time":        now.UTC().Format(time.RFC3339),
		detect.LabelDetected + ".origin":      c.Type,
		detect.LabelDetected + ".user_source": c.UserSource,
	}
}
