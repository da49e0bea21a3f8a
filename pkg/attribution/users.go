package attribution

import (
	"io"
	"os"
	"os/user"
	"strconv"
	"sync"
	"syscall"
)

// Users resolves uids to names and checks names, through NSS when the binary
// is built with cgo (so LDAP and SSSD users resolve). It caches answers for
// the life of one scan. It is the one place ds01 turns a uid into a name.
type Users struct {
	mu      sync.Mutex
	byUID   map[int]string
	byName  map[string]int
	lookup  func(uid string) (*user.User, error)
	lookupN func(name string) (*user.User, error)

	subuidPath string
	subuidOnce sync.Once
	subuid     []SubIDRange
}

// SubUIDFile is where the system keeps the subordinate uid ranges.
const SubUIDFile = "/etc/subuid"

// NewUsers returns a resolver backed by the system's user database, and
// by the subordinate uid ranges in subuid (SubUIDFile; "" for none), read
// once, the first time a uid without a name needs them.
func NewUsers(subuid string) *Users {
	return &Users{
		byUID: map[int]string{}, byName: map[string]int{},
		lookup: user.LookupId, lookupN: user.Lookup,
		subuidPath: subuid,
	}
}

// SubordinateOwner returns the user whose subordinate range holds uid,
// when uid has no name of its own: the host uid of a rootless container's
// process. A range's owner given as a number is named like any uid.
func (u *Users) SubordinateOwner(uid int) (string, bool) {
	if uid < 0 || u.Name(uid) != "uid:"+strconv.Itoa(uid) {
		return "", false
	}
	u.subuidOnce.Do(func() { u.subuid = readSubIDs(u.subuidPath) })
	owner, ok := subOwner(u.subuid, uint64(uid))
	if !ok {
		return "", false
	}
	if n, err := strconv.Atoi(owner); err == nil && n >= 0 {
		return u.Name(n), true
	}
	return owner, true
}

// readSubIDs reads a subordinate id file, not through a link; one that is
// missing or unreadable has no ranges.
func readSubIDs(path string) []SubIDRange {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSubIDFile))
	if err != nil {
		return nil
	}
	return ParseSubIDs(data)
}

// Name returns the user name for uid, or "uid:<n>" when it has none. A uid
// is never dropped.
func (u *Users) Name(uid int) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if n, ok := u.byUID[uid]; ok {
		return n
	}
	name := "uid:" + strconv.Itoa(uid)
	if usr, err := u.lookup(strconv.Itoa(uid)); err == nil && usr.Username != "" {
		name = usr.Username
	}
	u.byUID[uid] = name
	return name
}

// UID returns the uid of a user name, and false when no such user exists.
func (u *Users) UID(name string) (int, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if id, ok := u.byName[name]; ok {
		return id, id >= 0
	}
	id := -1
	if usr, err := u.lookupN(name); err == nil {
		if n, err := strconv.Atoi(usr.Uid); err == nil {
			id = n
		}
	}
	u.byName[name] = id
	return id, id >= 0
}
