package connlimit

import (
	"fmt"
	"syscall"
)

// RaiseFileLimit raises the process's soft limit of open files
// (RLIMIT_NOFILE) to its hard limit and returns the limit now in force.
func RaiseFileLimit() (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("reading the open-file limit: %w", err)
	}
	if rl.Cur < rl.Max {
		want := rl
		want.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return rl.Cur, fmt.Errorf("raising the open-file limit from %d to %d: %w", rl.Cur, rl.Max, err)
		}
		rl = want
	}
	return rl.Cur, nil
}

// FileLimit returns the process's soft limit of open files, or 0 if it
// cannot be read.
func FileLimit() uint64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return rl.Cur
}

// Budget splits a process's open-file limit between client connections and
// a reserve kept for everything else (admin, RPC, stat and pprof
// listeners, ZooKeeper, storage and peer connections, log files).
// reserve 0 picks the default: a tenth of the limit, at least 100 and at
// most half of it. It returns the client cap (limit minus reserve, at
// least 1) and the reserve; an unknown limit (0) gives no cap.
func Budget(limit uint64, reserve int) (clients, res int) {
	if limit == 0 || limit > 1<<30 {
		return 0, reserve
	}
	n := int(limit)
	if reserve <= 0 {
		reserve = min(max(n/10, 100), n/2)
	}
	return max(n-reserve, 1), reserve
}
