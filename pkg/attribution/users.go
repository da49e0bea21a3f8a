package attribution

import (
	"os/user"
	"strconv"
	"sync"
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
}

// NewUsers returns a resolver backed by the system's user database.
func NewUsers() *Users {
	return &Users{
		byUID: map[int]string{}, byName: map[string]int{},
		lookup: user.LookupId, lookupN: user.Lookup,
	}
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
