//go:build !linux

package models

// keepGoSignalHandlers runs f; restoring signal handlers after the CUDA
// provider is implemented for Linux only, where that provider runs.
func keepGoSignalHandlers(f func() error) (restored int, err error) { return 0, f() }
