package bookie

import (
	"os"
	"path/filepath"
	"syscall"
)

// diskFullSeam is statfsUsage, reporting the disk full while a file named
// DISK_FULL exists in dir (testfault.DiskFullFile: the fault harness fills a
// bookie's disk without filling the machine's).
func diskFullSeam(dir string) (used, total uint64, err error) {
	used, total, err = statfsUsage(dir)
	if _, serr := os.Stat(filepath.Join(dir, "DISK_FULL")); err == nil && serr == nil {
		used = total
	}
	return used, total, err
}

// statfsUsage reports used and total bytes of the filesystem holding dir.
func statfsUsage(dir string) (used, total uint64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, err
	}
	total = st.Blocks * uint64(st.Bsize)
	free := st.Bavail * uint64(st.Bsize)
	return total - free, total, nil
}
