package boltstore

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data (not its times) to the disk, as bbolt does.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
