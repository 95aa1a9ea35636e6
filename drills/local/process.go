package local

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
)

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// killStray sends SIGKILL to the postmaster of the cluster when pg_ctl could
// not stop it; only a process whose command line names this cluster's data
// directory is touched. Its backends exit on their own when it dies.
func (c *Cluster) killStray() {
	pid := c.PID()
	if pid <= 0 {
		return
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !strings.Contains(string(cmdline), c.DataDir()) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}
