//go:build integration

package integration

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ds01-project/ds01/pkg/inventory"
)

// fakeEngineScript serves a Unix socket the way a hostile engine would:
// garbage (a 200 answer that is not JSON), hang (accept, never answer),
// endless (a container list that never ends).
const fakeEngineScript = `
use IO::Socket::UNIX;
my ($path, $mode) = @ARGV;
$SIG{PIPE} = "IGNORE";
unlink $path;
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => $path, Listen => 16) or die "listen $path: $!";
$| = 1;
print "ready\n";
my @held;
while (my $c = $s->accept) {
	if ($mode eq "hang") { push @held, $c; next }
	my $req = "";
	sysread($c, $req, 65536);
	my $head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nApi-Version: 1.41\r\n";
	if ($mode eq "garbage") {
		print $c $head . "Content-Length: 9\r\n\r\n{garbage]";
	} else {
		print $c $head . "\r\n[";
		my $one = '{"Id":"' . ("a" x 64) . '","Names":["/x"],"Labels":{"k":"' . ("v" x 4000) . '"}},';
		while (print $c ($one x 64)) {}
	}
	close $c;
}
`

// fakeEngine runs a hostile engine as u on <run>/<uid>/docker.sock, the
// place of u's rootless engine, and returns the socket's path.
func fakeEngine(t *testing.T, run string, u testUser, mode string) string {
	t.Helper()
	dir := filepath.Join(run, strconv.Itoa(u.uid))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, u.uid, u.gid); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "docker.sock")
	cmd := exec.Command("perl", "-e", fakeEngineScript, path, mode)
	cmd.SysProcAttr = u.credential()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		mustHave(t, false, "cannot run perl as "+u.name+": "+err.Error())
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("fake %s engine of %s did not start", mode, u.name)
	}
	return path
}

// TestScanHostileUserEngines: a user's engine that answers garbage, one
// that never answers, one whose answer never ends, a socket another uid
// answers on (a swap for the system's engine) and a link to the system's
// socket cost each its own source and never the scan: it finishes within
// its budget, the system engine's containers whole, each bad engine down
// by its name, the link not asked at all.
func TestScanHostileUserEngines(t *testing.T) {
	id := container(t, "run", "-d", env.image, "sleep", "600")
	run, err := os.MkdirTemp("", "ds01-run-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	os.Chmod(run, 0o755)

	bad := map[string]string{}
	for _, mode := range []string{"garbage", "hang", "endless"} {
		u := newUser(t, "ds01it-eng-"+mode)
		bad[mode] = fakeEngine(t, run, u, mode)
	}
	// A socket in a user's place that root answers on: what a swap of the
	// user's socket for the system's would connect to.
	swapper := newUser(t, "ds01it-eng-swap")
	root := testUser{name: "root", uid: 0, gid: 0}
	swapped := fakeEngine(t, run, root, "garbage")
	swapDir := filepath.Join(run, strconv.Itoa(swapper.uid))
	if err := os.MkdirAll(swapDir, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(swapDir, swapper.uid, swapper.gid)
	if err := os.Rename(swapped, filepath.Join(swapDir, "docker.sock")); err != nil {
		t.Fatal(err)
	}
	os.Lchown(filepath.Join(swapDir, "docker.sock"), swapper.uid, swapper.gid)
	bad["swapped"] = filepath.Join(swapDir, "docker.sock")
	// A link to the system engine's socket.
	linker := newUser(t, "ds01it-eng-link")
	linkDir := filepath.Join(run, strconv.Itoa(linker.uid))
	os.MkdirAll(linkDir, 0o700)
	os.Chown(linkDir, linker.uid, linker.gid)
	link := filepath.Join(linkDir, "docker.sock")
	if err := os.Symlink(strings.TrimPrefix(env.dockerHost, "unix://"), link); err != nil {
		t.Fatal(err)
	}
	os.Lchown(link, linker.uid, linker.gid)

	s := newScanner(t)
	began := time.Now()
	inv, r := s.mustScan(t, scanOpts{args: []string{"--user-runtime-dir", run}})
	took := time.Since(began)
	if took > 12*time.Second {
		t.Errorf("the scan took %v with hostile user engines; each may cost its own budget (3 s), not more", took)
	}
	if c := find(inv, id); c == nil || c.Stale || !inv.Sources[inventory.SourceDocker].OK {
		t.Errorf("the system engine's container %s is not whole: %+v (docker %+v)", id[:12], c, inv.Sources[inventory.SourceDocker])
	}
	for mode, path := range bad {
		st, asked := inv.Sources[inventory.EngineSource(path)]
		if !asked || st.OK || st.Error == "" {
			t.Errorf("%s engine at %s: source %+v (asked %v); want down with the reason", mode, path, st, asked)
		}
		if mode == "swapped" && !strings.Contains(st.Error, "does not run as the socket's owner") {
			t.Errorf("swapped socket: error %q; want the owner check's", st.Error)
		}
	}
	if _, asked := inv.Sources[inventory.EngineSource(link)]; asked {
		t.Errorf("a link to the system's socket was asked as %s's engine", linker.name)
	}
	for _, c := range inv.Containers {
		if c.ID != id && c.Launcher != nil && c.Launcher.Engine != "" {
			t.Errorf("a hostile engine's container entered the inventory: %+v", c)
		}
	}
	if w := workloads(t, s.state); w.code != 0 || !strings.Contains(string(w.stderr), "docker:"+bad["hang"]) {
		t.Errorf("ds01-workloads does not name the hung engine as a source down (%s):\n%s", w.status(), w.output())
	}
	t.Logf("scan with hostile user engines: %v\n%s", took.Round(time.Millisecond), r.output())
}
