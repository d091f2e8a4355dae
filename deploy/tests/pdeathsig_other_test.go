//go:build !linux

package tests

import "os/exec"

// setPdeathsig: only Linux can tie a child's life to its parent; elsewhere cleanup relies on
// the test's own shutdown.
func setPdeathsig(*exec.Cmd) {}
