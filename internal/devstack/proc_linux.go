package devstack

import "syscall"

// childAttrs puts the Temporal dev server in its own process group, so that
// a Ctrl-C reaches garo dev alone and it stops the children in order, and
// has the kernel stop it if garo dev dies.
func childAttrs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
