package chaos

import "syscall"

// sysProcAttr kills the cluster's processes with the harness, however the
// harness ends.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
