package detect

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// RootlessSocket is the socket of a user's own (rootless) Docker engine.
type RootlessSocket struct {
	// Path is <runtime dir>/<uid>/docker.sock.
	Path string
	// UID owns the runtime directory, the socket and the engine.
	UID int
}

// RootlessSocketName is the socket a rootless engine listens on in its
// user's runtime directory ($XDG_RUNTIME_DIR).
const RootlessSocketName = "docker.sock"

// FindRootlessEngines lists the rootless Docker engines' sockets under
// runtimeDir (/run/user): <uid>/docker.sock where the directory is a real
// directory owned by uid and the socket a socket owned by uid. Nothing is
// followed: a link, a socket of another owner, a name that is not a uid,
// are passed over. A directory that cannot be read has none.
func FindRootlessEngines(runtimeDir string) []RootlessSocket {
	entries, err := os.ReadDir(runtimeDir)
	if err != nil {
		return nil
	}
	var out []RootlessSocket
	for _, e := range entries {
		uid, err := strconv.Atoi(e.Name())
		if err != nil || uid <= 0 || strconv.Itoa(uid) != e.Name() || !e.IsDir() {
			continue
		}
		dir := filepath.Join(runtimeDir, e.Name())
		if !ownedBy(dir, uid, unix.S_IFDIR) {
			continue
		}
		path := filepath.Join(dir, RootlessSocketName)
		if ownedBy(path, uid, unix.S_IFSOCK) {
			out = append(out, RootlessSocket{Path: path, UID: uid})
		}
	}
	return out
}

// ownedBy reports a file of that type, owned by uid, not through a link.
func ownedBy(path string, uid int, typ uint32) bool {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false
	}
	return st.Mode&unix.S_IFMT == typ && int(st.Uid) == uid
}

// ErrEngineNotOwned says the process answering on a user's engine socket
// is not that user's: the socket was swapped for another engine's.
var ErrEngineNotOwned = errors.New("the engine on the socket does not run as the socket's owner")

// DialOwned connects to the Unix socket at path and checks, from the
// kernel's record of the process listening (SO_PEERCRED), that it runs as
// uid. A user controls their runtime directory and could put a link to the
// system's socket where their engine's was, to have the system's containers
// listed as theirs: the check holds whatever the path led to when
// connecting. The connection reads at most maxRead bytes in all, so that
// an engine cannot answer without end.
func DialOwned(ctx context.Context, path string, uid int, maxRead int64) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		c.Close()
		return nil, fmt.Errorf("connect %s: not a Unix socket", path)
	}
	peer, err := peerUID(uc)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect %s: %w", path, err)
	}
	if peer != uid {
		c.Close()
		return nil, fmt.Errorf("connect %s: %w (uid %d, not %d)", path, ErrEngineNotOwned, peer, uid)
	}
	return &cappedConn{Conn: c, left: maxRead}, nil
}

// peerUID is the uid of the process on the other end of a Unix socket.
func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var serr error
	if err := raw.Control(func(fd uintptr) {
		cred, serr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("read the peer's credentials: %w", serr)
	}
	return int(cred.Uid), nil
}

// ErrAnswerTooLarge says an engine answered more than a scan reads of it.
var ErrAnswerTooLarge = errors.New("the engine answered more than a scan reads")

// cappedConn is a connection that reads at most left bytes more.
type cappedConn struct {
	net.Conn
	left int64
}

func (c *cappedConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, ErrAnswerTooLarge
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	return n, err
}
