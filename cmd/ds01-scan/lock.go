package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// errBusy says another scan holds the lock: not a failure, the timer will
// run again.
var errBusy = errors.New("another scan is running")

// lockWait is how long a second scan waits for the first before giving up.
const lockWait = 5 * time.Second

// acquireLock takes an exclusive flock on path, waiting up to lockWait. The
// file is opened without following links: /run/ds01 is root's, but a lock
// path given by flag may not be.
func acquireLock(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	deadline := time.Now().Add(lockWait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, errBusy
		}
		time.Sleep(100 * time.Millisecond)
	}
}
