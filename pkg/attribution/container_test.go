package attribution

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/detect"
	"github.com/ds01-project/ds01/pkg/inventory"
)

// noPID is above the kernel's PID_MAX_LIMIT: no process ever has it.
const noPID = 4194305

// attrEnv is the host a container attribution test runs against: real
// users, directories they own, and processes running as them.
type attrEnv struct {
	alice, bob hostUser
	// aliceDir and bobDir are directories owned by alice and bob; rootDir
	// is owned by root.
	aliceDir, bobDir, rootDir string
	// link is a symbolic link to aliceDir, made by root.
	link string
	// alicePID runs as alice; rootPID (this test) as root.
	alicePID, rootPID int
}

// newAttrEnv makes alice without a home directory and bob with one
// (/home/ds01t-bob), both removed when the test ends.
func newAttrEnv(t *testing.T) *attrEnv {
	t.Helper()
	e := &attrEnv{
		alice:   addUser(t, "ds01t-alice", false),
		bob:     addUser(t, "ds01t-bob", true),
		rootDir: t.TempDir(),
		rootPID: os.Getpid(),
	}
	if e.bob.Home != "/home/ds01t-bob" {
		t.Fatalf("bob's home is %s, want /home/ds01t-bob", e.bob.Home)
	}
	chown(t, e.bob.Home, e.bob)
	e.aliceDir = ownedDir(t, e.alice)
	e.bobDir = ownedDir(t, e.bob)
	e.link = filepath.Join(t.TempDir(), "link-to-alice")
	if err := os.Symlink(e.aliceDir, e.link); err != nil {
		t.Fatal(err)
	}
	e.alicePID = startAs(t, e.alice)
	return e
}

// ownedDir makes a directory owned by u.
func ownedDir(t *testing.T, u hostUser) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "proj-"+u.Name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	chown(t, dir, u)
	return dir
}

func chown(t *testing.T, path string, u hostUser) {
	t.Helper()
	if err := os.Chown(path, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
}

// startAs starts `sleep 30` as u and returns its PID; it is killed when the
// test ends, before u is removed.
func startAs(t *testing.T, u hostUser) int {
	t.Helper()
	cmd := exec.Command("sleep", "30")
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start sleep as %s: %v", u.Name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd.Process.Pid
}

// requireNoHostUser fails when name exists on this host: the cases using it
// need a name that only a container image has.
func requireNoHostUser(t *testing.T, name string) {
	t.Helper()
	if _, ok := NewUsers("").UID(name); ok {
		t.Fatalf("this host has a user %s; the test needs a name only an image has", name)
	}
}

func newAttributor() *Attributor {
	return New(NewUsers(""), detect.NewProcfs("/proc"), slog.New(slog.DiscardHandler))
}

type containerCase struct {
	name  string
	facts func(e *attrEnv) detect.ContainerFacts
	want  func(e *attrEnv) Result
}

func runContainerCases(t *testing.T, tests []containerCase) {
	t.Helper()
	e := newAttrEnv(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.facts(e)
			got := newAttributor().Container(f)
			if want := tc.want(e); got != want {
				t.Errorf("Container(%#v) = %#v, want %#v", f, got, want)
			}
		})
	}
}

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func res(user, source string) func(*attrEnv) Result {
	return func(*attrEnv) Result { return Result{User: user, Source: source} }
}

func aliceBy(source string) func(*attrEnv) Result {
	return func(e *attrEnv) Result { return Result{User: e.alice.Name, Source: source} }
}

func bobBy(source string) func(*attrEnv) Result {
	return func(e *attrEnv) Result { return Result{User: e.bob.Name, Source: source} }
}

var unknown = res(Unknown, SourceNone)

// TestContainerSignals: one case per signal, each alone.
func TestContainerSignals(t *testing.T) {
	requireNoHostUser(t, "vscode")
	runContainerCases(t, []containerCase{
		{"ds01.user label", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("ds01.user", e.alice.Name)}
		}, aliceBy(SourceLabelUser)},
		{"ds01.detected.user label", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("ds01.detected.user", e.alice.Name)}
		}, aliceBy(SourceLabelDetectedUser)},
		{"aime.mlc.USER label", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("aime.mlc.USER", e.alice.Name)}
		}, aliceBy(SourceLabelAIMEUser)},
		{"devcontainer folder owner", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("devcontainer.local_folder", e.aliceDir)}
		}, aliceBy(SourceDevcontainerFolder)},
		{"devcontainer folder absent, home path of a user", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("devcontainer.local_folder", "/home/"+e.alice.Name+"/x")}
		}, aliceBy(SourceDevcontainerHome)},
		{"devcontainer folder absent, home path of no user", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("devcontainer.local_folder", "/home/ds01t-nosuchuser/x")}
		}, unknown},
		{"compose working dir owner", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("com.docker.compose.project.working_dir", e.bobDir)}
		}, bobBy(SourceComposeDir)},
		{"bind mount in a home directory", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{BindSources: []string{e.rootDir, "/home/" + e.bob.Name + "/datasets/imagenet"}}
		}, bobBy(SourceBindMountHome)},
		{"bind mount outside home", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{BindSources: []string{e.aliceDir}}
		}, unknown},
		{"config user numeric uid", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{ConfigUser: strconv.Itoa(e.alice.UID)}
		}, aliceBy(SourceConfigUser)},
		{"config user uid:gid", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{ConfigUser: strconv.Itoa(e.alice.UID) + ":" + strconv.Itoa(e.alice.GID)}
		}, aliceBy(SourceConfigUser)},
		{"config user uid without a host user", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{ConfigUser: "4000000"}
		}, res("uid:4000000", SourceConfigUser)},
		{"config user host user name", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{ConfigUser: e.bob.Name}
		}, bobBy(SourceConfigUser)},
		{"config user name:group", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{ConfigUser: e.bob.Name + ":" + e.bob.Name}
		}, bobBy(SourceConfigUser)},
		{"config user only inside the image", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{ConfigUser: "vscode"}
		}, unknown},
		{"process uid", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{PID: e.alicePID}
		}, aliceBy(SourceProcessUID)},
		{"process gone", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{PID: noPID}
		}, unknown},
		{"nothing", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{}
		}, unknown},
	})
}

// TestContainerPriority: the earlier signal wins, and root never wins
// while anything else is known.
func TestContainerPriority(t *testing.T) {
	requireNoHostUser(t, "vscode")
	runContainerCases(t, []containerCase{
		{"ds01.user beats everything", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{
				Labels: labels(
					"ds01.user", e.bob.Name,
					"ds01.detected.user", e.alice.Name,
					"aime.mlc.USER", e.alice.Name,
					"devcontainer.local_folder", e.aliceDir,
					"com.docker.compose.project.working_dir", e.aliceDir),
				BindSources: []string{"/home/" + e.alice.Name + "/x"},
				ConfigUser:  e.alice.Name,
				PID:         e.alicePID,
			}
		}, bobBy(SourceLabelUser)},
		{"ds01.detected.user beats aime", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("ds01.detected.user", e.bob.Name, "aime.mlc.USER", e.alice.Name)}
		}, bobBy(SourceLabelDetectedUser)},
		{"aime beats devcontainer folder", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("aime.mlc.USER", e.bob.Name, "devcontainer.local_folder", e.aliceDir)}
		}, bobBy(SourceLabelAIMEUser)},
		{"devcontainer folder beats compose", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("devcontainer.local_folder", e.aliceDir, "com.docker.compose.project.working_dir", e.bobDir)}
		}, aliceBy(SourceDevcontainerFolder)},
		{"devcontainer home path beats compose", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("devcontainer.local_folder", "/home/"+e.alice.Name+"/x", "com.docker.compose.project.working_dir", e.bobDir)}
		}, aliceBy(SourceDevcontainerHome)},
		{"compose beats bind mount", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{
				Labels:      labels("com.docker.compose.project.working_dir", e.aliceDir),
				BindSources: []string{"/home/" + e.bob.Name + "/x"},
			}
		}, aliceBy(SourceComposeDir)},
		{"bind mount beats config user", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{BindSources: []string{"/home/" + e.bob.Name + "/x"}, ConfigUser: strconv.Itoa(e.alice.UID)}
		}, bobBy(SourceBindMountHome)},
		{"config user beats process uid", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{ConfigUser: e.bob.Name, PID: e.alicePID}
		}, bobBy(SourceConfigUser)},
		{"image-only config user falls through to process uid", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{ConfigUser: "vscode", PID: e.alicePID}
		}, aliceBy(SourceProcessUID)},
		{"root-owned devcontainer folder skipped, compose owner wins", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("devcontainer.local_folder", e.rootDir, "com.docker.compose.project.working_dir", e.bobDir)}
		}, bobBy(SourceComposeDir)},
		{"root label skipped", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("ds01.user", "root", "aime.mlc.USER", e.alice.Name)}
		}, aliceBy(SourceLabelAIMEUser)},
		{"root config user skipped for process uid", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{ConfigUser: "0", PID: e.alicePID}
		}, aliceBy(SourceProcessUID)},
		{"all root: first root signal is the source", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{
				Labels: labels(
					"aime.mlc.USER", "root",
					"devcontainer.local_folder", e.rootDir,
					"com.docker.compose.project.working_dir", e.rootDir),
				ConfigUser: "0",
				PID:        e.rootPID,
			}
		}, res("root", SourceLabelAIMEUser)},
		{"all root from the devcontainer folder on", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{
				Labels:     labels("devcontainer.local_folder", e.rootDir, "com.docker.compose.project.working_dir", e.rootDir),
				ConfigUser: "root",
				PID:        e.rootPID,
			}
		}, res("root", SourceDevcontainerFolder)},
		{"only a root process", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{PID: e.rootPID}
		}, res("root", SourceProcessUID)},
		{"symlinked devcontainer folder not followed", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("devcontainer.local_folder", e.link)}
		}, unknown},
		{"symlinked devcontainer folder not followed, compose owner wins", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("devcontainer.local_folder", e.link, "com.docker.compose.project.working_dir", e.bobDir)}
		}, bobBy(SourceComposeDir)},
	})
}

// TestContainerLabelSanity: a user label is free text anyone creating a
// container sets; a value no user name looks like is ignored, and the next
// signal (bob's compose directory) decides.
func TestContainerLabelSanity(t *testing.T) {
	bad := []struct {
		name, label, value string
	}{
		{"newline", "ds01.user", "alice\nbob"},
		{"slash", "ds01.user", "alice/bob"},
		{"dot-dot path", "ds01.user", "../alice"},
		{"100 chars", "ds01.user", strings.Repeat("a", 100)},
		{"65 chars", "ds01.user", strings.Repeat("a", 65)},
		{"ESC terminal escape", "ds01.user", "\x1b[31malice\x1b[0m"},
		{"C1 CSI terminal escape", "ds01.user", "\u009b31malice"},
		{"NUL", "ds01.user", "ali\x00ce"},
		{"DEL", "ds01.user", "ali\x7fce"},
		{"invalid UTF-8", "ds01.user", "ali\xffce"},
		{"inner space", "ds01.user", "alice bob"},
		{"colon not uid", "ds01.user", "alice:staff"},
		{"blank", "ds01.user", "  \t "},
		{"escape in ds01.detected.user", "ds01.detected.user", "\x1b]0;pwned\x07"},
		{"escape in aime.mlc.USER", "aime.mlc.USER", "\x1b[2J"},
	}
	var tests []containerCase
	for _, b := range bad {
		tests = append(tests, containerCase{b.name + " ignored", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels(b.label, b.value, "com.docker.compose.project.working_dir", e.bobDir)}
		}, bobBy(SourceComposeDir)})
	}
	good := []struct {
		name, value, want string
	}{
		{"surrounding space trimmed", " ds01t-alice\n", "ds01t-alice"},
		{"64 chars", strings.Repeat("a", 64), strings.Repeat("a", 64)},
		{"uid form", "uid:4000000", "uid:4000000"},
	}
	for _, g := range good {
		tests = append(tests, containerCase{g.name + " accepted", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: labels("ds01.user", g.value, "com.docker.compose.project.working_dir", e.bobDir)}
		}, res(g.want, SourceLabelUser)})
	}
	runContainerCases(t, tests)
}

// TestContainerIgnoresUnrelatedLabels: only the named labels are signals.
// A secret in another label (ContainerFacts carries no environment, but
// labels are free text too) never comes back in the result, even when it
// looks like a user name.
func TestContainerIgnoresUnrelatedLabels(t *testing.T) {
	const secret = "sk-live-9f8e7d6c5b4a"
	secrets := func(e *attrEnv) map[string]string {
		return labels(
			"OPENAI_API_KEY", secret,
			"com.example.password", secret,
			"com.example.owner", e.alice.Name,
			"USER", e.alice.Name,
			"ds01.user.backup", e.alice.Name,
		)
	}
	runContainerCases(t, []containerCase{
		{"no signal", func(e *attrEnv) detect.ContainerFacts {
			return detect.ContainerFacts{Labels: secrets(e)}
		}, unknown},
		{"with a signal", func(e *attrEnv) detect.ContainerFacts {
			l := secrets(e)
			l["com.docker.compose.project.working_dir"] = e.bobDir
			return detect.ContainerFacts{Labels: l}
		}, bobBy(SourceComposeDir)},
	})
	t.Run("secret not in derived labels", func(t *testing.T) {
		f := detect.ContainerFacts{Labels: labels("OPENAI_API_KEY", secret)}
		r := newAttributor().Container(f)
		c := &inventory.Container{User: r.User, UserSource: r.Source, Type: inventory.TypeRawDocker}
		for k, v := range DetectedLabels(f.Labels, c, time.Now()) {
			if strings.Contains(k, secret) || strings.Contains(v, secret) {
				t.Errorf("DetectedLabels returned %q=%q, which holds the secret", k, v)
			}
		}
	})
}

func TestDetectedLabels(t *testing.T) {
	now := time.Date(2026, 1, 30, 15, 30, 0, 123456789, time.FixedZone("CET", 3600))
	c := &inventory.Container{User: "ds01t-carol", UserSource: SourceComposeDir, Type: inventory.TypeDockerCompose}
	derived := map[string]string{
		"ds01.detected":             "true",
		"ds01.detected.user":        "ds01t-carol",
		"ds01.detected.user_source": SourceComposeDir,
		"ds01.detected.origin":      inventory.TypeDockerCompose,
		"ds01.detected.time":        "2026-01-30T14:30:00Z",
	}
	tests := []struct {
		name string
		own  map[string]string
		want map[string]string
	}{
		{
			name: "own labels honoured",
			own: labels(
				"ds01.detected", "true",
				"ds01.detected.user", "ds01t-alice",
				"ds01.detected.time", "2025-12-01T09:00:00Z",
				"ds01.detected.origin", "devcontainer",
				"ds01.detected.user_source", SourceLabelUser,
				"ds01.detected.extra", "not one ds01 defines: dropped",
				"ds01.user", "ds01t-bob",
				"ds01.detectedness", "not ours",
				"com.example.token", "sk-live-9f8e7d6c5b4a",
			),
			want: labels(
				"ds01.detected", "true",
				"ds01.detected.user", "ds01t-alice",
				"ds01.detected.time", "2025-12-01T09:00:00Z",
				"ds01.detected.origin", "devcontainer",
				"ds01.detected.user_source", SourceLabelUser,
			),
		},
		{name: "no labels", own: nil, want: derived},
		{name: "detected not true", own: labels("ds01.detected", "false", "ds01.detected.user", "ds01t-alice"), want: derived},
		{name: "detected TRUE is not true", own: labels("ds01.detected", "TRUE"), want: derived},
		{name: "detected user without detected=true", own: labels("ds01.detected.user", "ds01t-alice"), want: derived},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := DetectedLabels(tc.own, c, now)
			if len(got) != len(tc.want) {
				t.Errorf("DetectedLabels(%v) = %v, want %v", tc.own, got, tc.want)
			}
			for k, v := range tc.want {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("DetectedLabels(%v)[%q] = %q (present %v), want %q", tc.own, k, g, ok, v)
				}
			}
			if ts, ok := got["ds01.detected.time"]; ok {
				if _, err := time.Parse(time.RFC3339, ts); err != nil {
					t.Errorf("ds01.detected.time %q is not RFC 3339: %v", ts, err)
				}
			}
		})
	}
}

// TestDetectedLabelsOwnOversized: honoured labels come from Facts.Labels,
// which are uncapped, and are stored in the inventory. A value over
// detect.MaxLabelValue is dropped there like any other kept label ("a
// longer value is dropped, not cut, so that no part of it is stored").
func TestDetectedLabelsOwnOversized(t *testing.T) {
	big := strings.Repeat("x", detect.MaxLabelValue+1)
	own := labels(
		"ds01.detected", "true",
		"ds01.detected.user", "ds01t-alice",
		"ds01.detected.note", big,
	)
	got := DetectedLabels(own, &inventory.Container{User: "ds01t-alice"}, time.Now())
	if v, ok := got["ds01.detected.note"]; ok {
		t.Errorf("DetectedLabels kept ds01.detected.note of %d bytes (cap %d)", len(v), detect.MaxLabelValue)
	}
	if got["ds01.detected.user"] != "ds01t-alice" {
		t.Errorf("DetectedLabels(...)[ds01.detected.user] = %q, want the honoured ds01t-alice", got["ds01.detected.user"])
	}
}
