package tests

import (
	"os/exec"
	"syscall"
)

// setPdeathsig kills the child when the test binary dies, so a crashed or killed test leaves no
// etcd or kube-apiserver behind.
func setPdeathsig(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
